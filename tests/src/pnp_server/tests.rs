//! Scripted exchanges with the PnP test server over 127.0.0.1, with a plain
//! hyper client (one connection per request), and one with the proxy's own
//! agent over HTTPS. The agent's side is written and read with the proxy's
//! codec on purpose: the server, which has its own XML code, must read what
//! the product writes and write what the product reads.
use std::path::PathBuf;

use hyper::client::conn::http1 as client;
use proxy::pnp::agent::{
    AgentEvent, AgentIdentity, AgentShared, PnpProfile, TlsTrust, spawn_agent,
};
use proxy::pnp::codec::{self as product, encode_agent_message, parse_server_message};
use tokio::sync::mpsc;

use super::*;

const UDI: &str = "PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB";
const OTHER: &str = "PID:CISCO2921/K9,VID:,SN:FOC1234";

fn udi(text: &str) -> Udi {
    text.parse().expect("test UDI")
}

/// The same UDI as the proxy's codec holds it.
fn product_udi(text: &str) -> proxy::udi::Udi {
    text.parse().expect("test UDI")
}

/// One request on a fresh connection: status and body.
async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) = client::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string());
    if body.is_some() {
        request = request.header(CONTENT_TYPE, "text/xml; charset=utf-8");
    }
    let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn envelope(udi_text: &str, sid: Option<&str>) -> product::Envelope {
    product::Envelope::agent(product_udi(udi_text), sid.map(str::to_owned))
}

fn work_request_xml(udi_text: &str, correlator: &str, sid: Option<&str>) -> String {
    encode_agent_message(&product::AgentMessage {
        envelope: envelope(udi_text, sid),
        body: product::AgentBody::WorkRequest(product::WorkRequest {
            correlator: correlator.to_owned(),
            udi: Some(product_udi(udi_text)),
            hostname: Some("sw1".to_owned()),
            auth_required: false,
            via_proxy: true,
        }),
    })
}

fn response_xml(udi_text: &str, response: product::Response) -> String {
    encode_agent_message(&product::AgentMessage {
        envelope: envelope(udi_text, None),
        body: product::AgentBody::Response(response),
    })
}

/// Posts a work-request and parses the answer.
async fn ask(server: &PnpServer, udi_text: &str, correlator: &str) -> product::ServerMessage {
    let (status, body) = call(
        server.addr(),
        Method::POST,
        "/pnp/WORK-REQUEST",
        Some(work_request_xml(udi_text, correlator, None)),
    )
    .await
    .expect("work-request");
    assert_eq!(status, StatusCode::OK);
    parse_server_message(&body).expect("server message parses")
}

/// Posts a response and checks the `bye`.
async fn answer(server: &PnpServer, udi_text: &str, response: product::Response) {
    let correlator = response.correlator.clone();
    let (status, body) = call(
        server.addr(),
        Method::POST,
        "/pnp/WORK-RESPONSE",
        Some(response_xml(udi_text, response)),
    )
    .await
    .expect("work-response");
    assert_eq!(status, StatusCode::OK);
    let bye = parse_server_message(&body).expect("bye parses");
    assert_eq!(
        bye.body,
        product::ServerBody::Bye {
            correlator: Some(correlator)
        }
    );
}

fn job(message: &product::ServerMessage, correlator: &str) -> product::Job {
    match &message.body {
        product::ServerBody::Request(request) => {
            assert_eq!(request.correlator, correlator);
            request.job.clone()
        }
        other => panic!("not a request: {other:?}"),
    }
}

#[tokio::test]
async fn a_scripted_exchange_is_served_and_logged() {
    let server = PnpServer::start(PnpServerConfig::loopback())
        .await
        .expect("server");
    let config_md5 = server.add_config("sw1.cfg", "hostname sw1\nend\n");
    let (image, image_md5) = fake_image(4096);
    assert_eq!(server.add_image("c2960x.tar", image.clone()), image_md5);
    server.set_script(
        &udi(UDI),
        Script::new(vec![
            Step::DeviceInfo(DeviceInfoType::All),
            Step::ConfigUpgrade {
                apply_to: ApplyTo::Startup,
                file: "sw1.cfg".to_owned(),
                reload: true,
            },
            Step::ImageInstall {
                file: "c2960x.tar".to_owned(),
                md5: None,
            },
            Step::Backoff { secs: 30 },
        ]),
    );

    let (status, body) = call(server.addr(), Method::GET, "/pnp/HELLO", None)
        .await
        .expect("HELLO");
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    assert_eq!(server.hellos(), 1);

    let message = ask(&server, UDI, "CiscoPnP-1.0-1-0000000A").await;
    assert_eq!(message.envelope.udi, Some(product_udi(UDI)));
    assert_eq!(
        job(&message, "CiscoPnP-1.0-1-0000000A"),
        product::Job::DeviceInfo(product::DeviceInfoType::All)
    );
    let mut reply = product::Response::ok(product::Service::DeviceInfo, "CiscoPnP-1.0-1-0000000A");
    reply.body = product::ResponseBody::DeviceInfo(product::DeviceInfoReply {
        udi: Some(product_udi(UDI)),
        ..product::DeviceInfoReply::default()
    });
    answer(&server, UDI, reply).await;
    let reply = Response {
        service: Service::DeviceInfo,
        correlator: "CiscoPnP-1.0-1-0000000A".to_owned(),
        success: true,
        error: None,
        body: ResponseBody::DeviceInfo(DeviceInfoReply {
            udi: Some(UDI.to_owned()),
            ..DeviceInfoReply::default()
        }),
    };

    let message = ask(&server, UDI, "CiscoPnP-1.0-2-0000000B").await;
    let product::Job::ConfigUpgrade(config) = job(&message, "CiscoPnP-1.0-2-0000000B") else {
        panic!("not a config-upgrade");
    };
    assert_eq!(config.source.location, server.config_url("sw1.cfg"));
    assert_eq!(
        config.source.location,
        format!("http://{}/configs/sw1.cfg", server.addr())
    );
    assert_eq!(config.source.checksum.as_deref(), Some(config_md5.as_str()));
    assert_eq!(config.apply_to, product::ApplyTo::Startup);
    assert!(matches!(config.reload, product::ReloadPolicy::Reload(_)));
    let (status, body) = call(server.addr(), Method::GET, "/configs/sw1.cfg", None)
        .await
        .expect("config download");
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"hostname sw1\nend\n"[..])
    );
    let failed = product::Response::failed(
        product::Service::ConfigUpgrade,
        "CiscoPnP-1.0-2-0000000B",
        product::ErrorInfo {
            severity: "ERROR".to_owned(),
            code: "PnP Service Error 1803".to_owned(),
            message: "Source file not found".to_owned(),
        },
    );
    answer(&server, UDI, failed).await;
    let failed = Response {
        service: Service::ConfigUpgrade,
        correlator: "CiscoPnP-1.0-2-0000000B".to_owned(),
        success: false,
        error: Some(ErrorInfo {
            severity: "ERROR".to_owned(),
            code: "PnP Service Error 1803".to_owned(),
            message: "Source file not found".to_owned(),
        }),
        body: ResponseBody::Empty,
    };

    let message = ask(&server, UDI, "CiscoPnP-1.0-3-0000000C").await;
    let product::Job::ImageInstall(install) = job(&message, "CiscoPnP-1.0-3-0000000C") else {
        panic!("not an image-install");
    };
    assert_eq!(install.source.location, server.image_url("c2960x.tar"));
    assert_eq!(install.source.checksum.as_deref(), Some(image_md5.as_str()));
    assert_eq!(install.destination.as_deref(), Some("flash:c2960x.tar"));
    let (status, body) = call(server.addr(), Method::GET, "/images/c2960x.tar", None)
        .await
        .expect("image download");
    assert_eq!(
        (status, md5_hex(&body)),
        (StatusCode::OK, image_md5.clone())
    );
    let (status, _) = call(server.addr(), Method::GET, "/images/missing.tar", None)
        .await
        .expect("missing download");
    assert_eq!(status, StatusCode::NOT_FOUND);
    answer(
        &server,
        UDI,
        product::Response::ok(product::Service::ImageInstall, "CiscoPnP-1.0-3-0000000C"),
    )
    .await;

    let message = ask(&server, UDI, "CiscoPnP-1.0-4-0000000D").await;
    let product::Job::Backoff(backoff) = job(&message, "CiscoPnP-1.0-4-0000000D") else {
        panic!("not a backoff");
    };
    assert_eq!(
        backoff.action,
        product::BackoffAction::CallbackAfter(Duration::from_secs(30))
    );
    answer(
        &server,
        UDI,
        product::Response::ok(product::Service::Backoff, "CiscoPnP-1.0-4-0000000D"),
    )
    .await;

    // The script is done: bye and nothing else.
    let message = ask(&server, UDI, "CiscoPnP-1.0-5-0000000E").await;
    assert_eq!(
        message.body,
        product::ServerBody::Bye {
            correlator: Some("CiscoPnP-1.0-5-0000000E".to_owned())
        }
    );

    let log = server.log(&udi(UDI));
    let kinds: Vec<String> = log.iter().map(|e| e.received.to_string()).collect();
    assert_eq!(log.len(), 9, "{kinds:#?}");
    assert_eq!(
        log[0].work_request().map(|w| w.correlator.as_str()),
        Some("CiscoPnP-1.0-1-0000000A")
    );
    assert!(log[0].work_request().is_some_and(|w| w.via_proxy));
    assert_eq!(log[1].response(), Some(&reply));
    assert_eq!(log[3].response(), Some(&failed));
    assert!(
        kinds[3].contains("success=0 error=PnP Service Error 1803"),
        "{}",
        kinds[3]
    );
    assert!(log[5].response().is_some_and(|r| r.success));
    let downloads: Vec<String> = server
        .entries()
        .iter()
        .filter(|e| matches!(e.received, Received::Download { .. }))
        .map(|e| e.received.to_string())
        .collect();
    assert_eq!(
        downloads,
        [
            "download /configs/sw1.cfg",
            "download /images/c2960x.tar",
            "download /images/missing.tar (not found)"
        ]
    );
}

#[tokio::test]
async fn each_udi_runs_its_own_copy_of_the_default_script_and_repeats() {
    let mut config = PnpServerConfig::loopback();
    config.default_script = Script::repeating(vec![Step::Capability, Step::Topology]);
    let server = PnpServer::start(config).await.expect("server");
    server.set_script(
        &udi(OTHER),
        Script::new(vec![Step::Unsupported {
            service: "cli-exec".to_owned(),
        }]),
    );
    let first = ask(&server, UDI, "c1").await;
    assert_eq!(job(&first, "c1"), product::Job::Capability);
    let second = ask(&server, UDI, "c2").await;
    assert_eq!(job(&second, "c2"), product::Job::Topology);
    let third = ask(&server, UDI, "c3").await;
    assert_eq!(job(&third, "c3"), product::Job::Capability);
    let other = ask(&server, OTHER, "o1").await;
    assert_eq!(
        job(&other, "o1"),
        product::Job::Unsupported {
            service: "cli-exec".to_owned()
        }
    );
    assert_eq!(other.envelope.udi, Some(product_udi(OTHER)));
    let refused = product::Response::refused(
        product::Service::Other("cli-exec".to_owned()),
        "o1",
        product::SmiRefusal::UnsupportedRequest,
    );
    answer(&server, OTHER, refused).await;
    let refused = Response {
        service: Service::Other("cli-exec".to_owned()),
        correlator: "o1".to_owned(),
        success: false,
        error: Some(ErrorInfo {
            severity: "ERROR".to_owned(),
            code: "PNP_ERROR_UNSUPPORTED_REQUEST".to_owned(),
            message: "SMI PROXY:Not supported service request".to_owned(),
        }),
        body: ResponseBody::Empty,
    };
    let other = ask(&server, OTHER, "o2").await;
    assert!(matches!(other.body, product::ServerBody::Bye { .. }));
    server.set_default_script(Script::new(vec![Step::Terminate]));
    let third_udi = "PID:ISR4451-X/K9,VID:V01,SN:FGL1";
    let message = ask(&server, third_udi, "t1").await;
    assert!(matches!(
        job(&message, "t1"),
        product::Job::Backoff(product::Backoff {
            action: product::BackoffAction::Terminate,
            ..
        })
    ));
    assert_eq!(server.log(&udi(UDI)).len(), 3);
    assert_eq!(server.log(&udi(OTHER))[1].response(), Some(&refused));
}

#[tokio::test]
async fn prefixed_form_and_alternative_spellings_still_parse() {
    let mut config = PnpServerConfig::loopback();
    config.wire = WireOptions {
        prefixed: true,
        alt_spellings: true,
    };
    config.sid = Some("S-7".to_owned());
    config.default_script = Script::new(vec![
        Step::DeviceInfo(DeviceInfoType::Image),
        Step::Backoff { secs: 90 },
        Step::ImageInstall {
            file: "i.tar".to_owned(),
            md5: Some("0cc175b9c0f1b6a831c399e269772661".to_owned()),
        },
    ]);
    let server = PnpServer::start(config).await.expect("server");

    let (_, body) = call(
        server.addr(),
        Method::POST,
        "/pnp/WORK-REQUEST",
        Some(work_request_xml(UDI, "c1", None)),
    )
    .await
    .expect("work-request");
    let text = String::from_utf8_lossy(&body).into_owned();
    assert!(
        text.contains(
            r#"<ns0:pnp xmlns:ns0="urn:cisco:pnp" xmlns:ns1="urn:cisco:pnp:device-info""#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"<ns1:request correlator="c1"><deviceInfo type="image"/></ns1:request></ns0:pnp>"#
        ),
        "{text}"
    );
    let message = parse_server_message(&body).expect("prefixed form parses");
    assert_eq!(message.envelope.sid.as_deref(), Some("S-7"));
    assert_eq!(
        job(&message, "c1"),
        product::Job::DeviceInfo(product::DeviceInfoType::Image)
    );

    let (_, body) = call(
        server.addr(),
        Method::POST,
        "/pnp/WORK-REQUEST",
        Some(work_request_xml(UDI, "c2", Some("S-7"))),
    )
    .await
    .expect("work-request");
    let text = String::from_utf8_lossy(&body).into_owned();
    assert!(
        text.contains("<callBackAfter><minutes>1</minutes><seconds>30</seconds></callBackAfter>"),
        "{text}"
    );
    let message = parse_server_message(&body).expect("callBackAfter parses");
    let product::Job::Backoff(backoff) = job(&message, "c2") else {
        panic!("not a backoff");
    };
    assert_eq!(
        backoff.action,
        product::BackoffAction::CallbackAfter(Duration::from_secs(90))
    );

    let message = ask(&server, UDI, "c3").await;
    let product::Job::ImageInstall(install) = job(&message, "c3") else {
        panic!("not an image-install");
    };
    let product::ReloadPolicy::Reload(reload) = install.reload else {
        panic!("no reload");
    };
    assert_eq!(reload.save_config, Some(true));

    let (_, body) = call(
        server.addr(),
        Method::POST,
        "/pnp/WORK-RESPONSE",
        Some(response_xml(
            UDI,
            product::Response::ok(product::Service::ImageInstall, "c3"),
        )),
    )
    .await
    .expect("work-response");
    let text = String::from_utf8_lossy(&body).into_owned();
    assert!(
        text.contains("<ns1:info xmlns:ns1") || text.contains("<ns1:info"),
        "{text}"
    );
    assert_eq!(
        parse_server_message(&body)
            .expect("prefixed bye parses")
            .body,
        product::ServerBody::Bye {
            correlator: Some("c3".to_owned())
        }
    );
    let log = server.log(&udi(UDI));
    assert_eq!(log[0].sid, None);
    assert_eq!(log[1].sid.as_deref(), Some("S-7"));
}

#[tokio::test]
async fn faults_bad_bodies_and_wrong_methods_are_handled() {
    let server = PnpServer::start(PnpServerConfig::loopback())
        .await
        .expect("server");
    let fault = encode_agent_message(&product::AgentMessage {
        envelope: envelope(UDI, None),
        body: product::AgentBody::Fault(product::Fault::client(
            "An unknown XML tag has been received",
            "struct",
        )),
    });
    let (status, body) = call(
        server.addr(),
        Method::POST,
        "/pnp/WORK-RESPONSE",
        Some(fault),
    )
    .await
    .expect("fault");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        parse_server_message(&body).expect("bye").body,
        product::ServerBody::Bye { correlator: None }
    );
    let (status, _) = call(
        server.addr(),
        Method::POST,
        "/pnp/WORK-REQUEST",
        Some("<pnp><oops".to_owned()),
    )
    .await
    .expect("garbage");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        server.addr(),
        Method::POST,
        "/pnp/WORK-RESPONSE",
        Some(work_request_xml(UDI, "c1", None)),
    )
    .await
    .expect("wrong endpoint");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        server.addr(),
        Method::POST,
        "/pnp/HELLO",
        Some(String::new()),
    )
    .await
    .expect("POST HELLO");
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = call(server.addr(), Method::GET, "/elsewhere", None)
        .await
        .expect("404");
    assert_eq!(status, StatusCode::NOT_FOUND);

    let log = server.log(&udi(UDI));
    assert!(
        matches!(&log[..], [LogEntry { received: Received::Fault(f), .. }] if f.string == "An unknown XML tag has been received")
    );
    let unparsable: Vec<String> = server
        .entries()
        .iter()
        .filter(|e| matches!(e.received, Received::Unparsable { .. }))
        .map(|e| e.received.to_string())
        .collect();
    assert_eq!(unparsable.len(), 2, "{unparsable:?}");
    assert!(unparsable[0].starts_with("unparsable on /pnp/WORK-REQUEST"));
    assert_eq!(
        unparsable[1],
        "unparsable on /pnp/WORK-RESPONSE: work-request posted to /pnp/WORK-RESPONSE"
    );
}

#[tokio::test]
async fn stop_answering_drops_connections_for_a_while() {
    let server = PnpServer::start(PnpServerConfig::loopback())
        .await
        .expect("server");
    server.stop_answering(None);
    assert!(
        call(server.addr(), Method::GET, "/pnp/HELLO", None)
            .await
            .is_err()
    );
    server.resume_answering();
    let (status, _) = call(server.addr(), Method::GET, "/pnp/HELLO", None)
        .await
        .expect("answering again");
    assert_eq!(status, StatusCode::OK);

    // A keep-alive connection opened before also goes unanswered.
    let stream = TcpStream::connect(server.addr()).await.expect("connect");
    let (mut sender, connection) = client::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    server.stop_answering(Some(Duration::from_secs(3600)));
    let request = hyper::Request::get("/pnp/HELLO")
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert!(sender.send_request(request).await.is_err());
    assert!(
        call(server.addr(), Method::GET, "/pnp/HELLO", None)
            .await
            .is_err()
    );
    // A period that is over: answering again.
    server.stop_answering(Some(Duration::ZERO));
    let (status, _) = call(server.addr(), Method::GET, "/pnp/HELLO", None)
        .await
        .expect("answering after the period");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.hellos(), 2);
}

#[tokio::test]
async fn stop_listening_refuses_connects_until_listen_again() {
    let server = PnpServer::start(PnpServerConfig::loopback())
        .await
        .expect("server");
    // A keep-alive connection opened before the stop is cut too.
    let stream = TcpStream::connect(server.addr()).await.expect("connect");
    let (mut sender, connection) = client::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    assert!(server.stop_listening().await);
    assert!(!server.is_listening());
    assert!(!server.stop_listening().await, "already stopped");
    let refused = TcpStream::connect(server.addr())
        .await
        .expect_err("nothing listens");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let request = hyper::Request::get("/pnp/HELLO")
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert!(sender.send_request(request).await.is_err());

    server.listen_again().expect("same address again");
    assert!(server.is_listening());
    server.listen_again().expect("idempotent");
    let (status, _) = call(server.addr(), Method::GET, "/pnp/HELLO", None)
        .await
        .expect("listening again");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.hellos(), 1);
}

#[tokio::test]
async fn raw_answers_come_first_then_the_script() {
    let server = PnpServer::start(PnpServerConfig::loopback())
        .await
        .expect("server");
    server.set_default_script(Script::new(vec![Step::Capability]));
    server.push_raw_answer(&udi(UDI), "<!DOCTYPE pnp []><pnp/>");
    server.push_raw_answer(&udi(UDI), vec![b'<'; 3]);
    assert_eq!(server.raw_answers_left(&udi(UDI)), 2);
    for expected in [&b"<!DOCTYPE pnp []><pnp/>"[..], b"<<<"] {
        let (status, body) = call(
            server.addr(),
            Method::POST,
            "/pnp/WORK-REQUEST",
            Some(work_request_xml(UDI, "c1", None)),
        )
        .await
        .expect("work-request");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], expected);
    }
    assert_eq!(server.raw_answers_left(&udi(UDI)), 0);
    // Other UDIs were never concerned; the script starts where it was.
    assert_eq!(
        job(&ask(&server, OTHER, "c2").await, "c2"),
        product::Job::Capability
    );
    assert_eq!(
        job(&ask(&server, UDI, "c3").await, "c3"),
        product::Job::Capability
    );
    assert_eq!(server.log(&udi(UDI)).len(), 3);
}

#[tokio::test]
async fn unanswered_jobs_are_sent_again_when_asked_to() {
    let server = PnpServer::start(PnpServerConfig::loopback())
        .await
        .expect("server");
    server.set_default_script(Script::new(vec![Step::Capability, Step::Topology]));
    // Off: a job goes once, answered or not.
    assert_eq!(
        job(&ask(&server, OTHER, "o1").await, "o1"),
        product::Job::Capability
    );
    assert_eq!(
        job(&ask(&server, OTHER, "o2").await, "o2"),
        product::Job::Topology
    );

    server.set_redeliver_unanswered(true);
    assert_eq!(
        job(&ask(&server, UDI, "c1").await, "c1"),
        product::Job::Capability
    );
    // The agent restarted without answering: the same job, new correlator.
    assert_eq!(
        job(&ask(&server, UDI, "c2").await, "c2"),
        product::Job::Capability
    );
    assert_eq!(server.redelivered(), 1);
    answer(
        &server,
        UDI,
        product::Response::ok(product::Service::Capability, "c2"),
    )
    .await;
    assert_eq!(
        job(&ask(&server, UDI, "c3").await, "c3"),
        product::Job::Topology
    );
    answer(
        &server,
        UDI,
        product::Response::ok(product::Service::Topology, "c3"),
    )
    .await;
    let bye = ask(&server, UDI, "c4").await;
    assert!(
        matches!(bye.body, product::ServerBody::Bye { .. }),
        "{bye:?}"
    );
    // `bye` is never outstanding.
    assert!(matches!(
        ask(&server, UDI, "c5").await.body,
        product::ServerBody::Bye { .. }
    ));
    assert_eq!(server.redelivered(), 1);
}

#[test]
fn fake_image_has_the_size_asked_and_a_valid_tar_header() {
    for len in [0, 100, 512, 1000, 4096, 1 << 20] {
        let (data, md5) = fake_image(len);
        assert_eq!(data.len(), len);
        assert_eq!(md5, md5_hex(&data));
        assert_eq!(md5.len(), 32);
    }
    let (data, _) = fake_image(4096);
    assert_eq!(&data[257..263], b"ustar\0");
    let stored = u32::from_str_radix(
        std::str::from_utf8(&data[148..154]).expect("ASCII checksum"),
        8,
    )
    .expect("octal checksum");
    let mut header = data[..512].to_vec();
    header[148..156].copy_from_slice(b"        ");
    assert_eq!(stored, header.iter().map(|&b| u32::from(b)).sum::<u32>());
    let size = usize::from_str_radix(std::str::from_utf8(&data[124..135]).expect("ASCII size"), 8)
        .expect("octal size");
    assert_eq!(size, 4096 - 1536);
    assert!(
        data[4096 - 1024..].iter().all(|&b| b == 0),
        "end-of-archive blocks"
    );
    assert_eq!(fake_image(4096), fake_image(4096));
}

#[test]
fn scripts_parse_from_text() {
    let script: Script = "device-info, device-info:udi, config:running:a.cfg, \
        config:startup:a.cfg:reload, image:i.tar, image:i.tar:abc, capability, topology, \
        backoff:30, default-minutes:5, terminate, unsupported:cli-exec, bye, repeat"
        .parse()
        .expect("script");
    assert!(script.repeat);
    assert_eq!(
        script.steps,
        [
            Step::DeviceInfo(DeviceInfoType::All),
            Step::DeviceInfo(DeviceInfoType::Udi),
            Step::ConfigUpgrade {
                apply_to: ApplyTo::Running,
                file: "a.cfg".to_owned(),
                reload: false
            },
            Step::ConfigUpgrade {
                apply_to: ApplyTo::Startup,
                file: "a.cfg".to_owned(),
                reload: true
            },
            Step::ImageInstall {
                file: "i.tar".to_owned(),
                md5: None
            },
            Step::ImageInstall {
                file: "i.tar".to_owned(),
                md5: Some("abc".to_owned())
            },
            Step::Capability,
            Step::Topology,
            Step::Backoff { secs: 30 },
            Step::DefaultMinutes(5),
            Step::Terminate,
            Step::Unsupported {
                service: "cli-exec".to_owned()
            },
            Step::Bye,
        ]
    );
    assert_eq!("".parse::<Script>(), Ok(Script::default()));
    assert!(matches!(
        "reboot".parse::<Step>(),
        Err(ScriptError::UnknownStep(_))
    ));
    assert!(matches!(
        "backoff:soon".parse::<Step>(),
        Err(ScriptError::BadArgument { .. })
    ));
    assert!(matches!(
        "config:startup".parse::<Step>(),
        Err(ScriptError::BadArgument { .. })
    ));
    let (parsed, script) =
        parse_udi_script(&format!("{OTHER}=capability,bye")).expect("per-UDI script");
    assert_eq!(parsed, udi(OTHER));
    assert_eq!(script.steps, [Step::Capability, Step::Bye]);
    assert!(matches!(
        parse_udi_script("capability"),
        Err(ScriptError::NotUdiScript(_))
    ));
}

/// A PEM file removed when dropped.
struct TempPem(PathBuf);

impl Drop for TempPem {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn the_proxy_agent_works_against_it_over_https_with_a_pinned_certificate() {
    let mut config = PnpServerConfig::loopback();
    config.https = true;
    config.sid = Some("S-42".to_owned());
    config.default_script = Script::new(vec![
        Step::DeviceInfo(DeviceInfoType::All),
        Step::Backoff { secs: 3600 },
    ]);
    let server = PnpServer::start(config).await.expect("server");
    let pem = server.cert_pem().expect("https server has a certificate");
    let pin = TempPem(
        std::env::temp_dir().join(format!("smi-pnp-server-test-{}.pem", std::process::id())),
    );
    std::fs::write(&pin.0, pem).expect("write pin");
    let mut profile = PnpProfile::new(server.url());
    profile.trust = Some(TlsTrust::PinnedCert(pin.0.clone()));
    let shared = AgentShared::new(profile).expect("profile");
    let (jobs_tx, mut jobs) = mpsc::channel(4);
    let (events_tx, mut events) = mpsc::channel(256);
    let cancel = CancellationToken::new();
    let identity = AgentIdentity {
        udi: product_udi(UDI),
        hostname: None,
        mac: proxy::mac::Mac([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
    };
    let agent = spawn_agent(shared, identity, jobs_tx, events_tx, cancel.clone());

    let job = jobs.recv().await.expect("device-info job");
    assert_eq!(
        job.request.job,
        product::Job::DeviceInfo(product::DeviceInfoType::All)
    );
    let correlator = job.request.correlator.clone();
    job.respond(product::Response::ok(
        product::Service::DeviceInfo,
        correlator.clone(),
    ));
    loop {
        let report = events.recv().await.expect("events");
        if matches!(report.event, AgentEvent::Backoff { .. }) {
            break;
        }
    }
    let log = server.wait_for(&udi(UDI), |log| log.len() >= 4).await;
    assert_eq!(server.hellos(), 1);
    assert!(log[0].work_request().is_some_and(|w| w.via_proxy));
    assert_eq!(log[0].sid, None);
    assert_eq!(
        log[1]
            .response()
            .map(|r| (r.correlator.as_str(), r.success)),
        Some((correlator.as_str(), true))
    );
    assert_eq!(log[1].sid.as_deref(), Some("S-42"));
    assert!(log[2].work_request().is_some());
    assert_eq!(log[2].sid.as_deref(), Some("S-42"));
    assert_eq!(
        log[3].response().map(|r| (&r.service, r.success)),
        Some((&Service::Backoff, true))
    );
    cancel.cancel();
    agent.await.expect("agent");
}
