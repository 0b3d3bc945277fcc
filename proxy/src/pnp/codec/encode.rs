//! Messages to bytes: a small string `Writer` for the fixed PnP shapes,
//! the agent's encoders ([`encode_agent_message`] and the shorthands
//! [`encode_work_request`], [`encode_response`], [`encode_fault`]), and, for
//! the test server and fuzzing, `encode_server_message` (unit tests or
//! feature `test-server`).

use quick_xml::escape::escape;

use super::model::{
    AgentBody, AgentMessage, DeviceInfoReply, Envelope, Fault, Response, ResponseBody, WorkRequest,
};
#[cfg(any(test, feature = "test-server"))]
use super::model::{BackoffAction, Job, ReloadPolicy, Request, ServerBody, ServerMessage, Source};
use super::reader::is_xml_char;
use super::{NS_FAULT, NS_PNP, NS_WORK_INFO, NS_XSVC_ERROR, XML_DECLARATION};
use crate::udi::Udi;

/// Appends `raw` escaped with quick-xml's `escape`; in attribute values tab
/// and line feed become character references too; characters XML 1.0
/// forbids become U+FFFD.
fn escape_into(out: &mut String, raw: &str, attribute: bool) {
    for c in escape(raw).chars() {
        match c {
            '\t' if attribute => out.push_str("&#9;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if !is_xml_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// A small writer for the fixed PnP shapes.
struct Writer {
    out: String,
}

impl Writer {
    fn new(envelope: &Envelope) -> Self {
        let mut w = Writer {
            out: String::with_capacity(512),
        };
        w.out.push_str(XML_DECLARATION);
        w.out.push('\n');
        let udi = envelope.udi.as_ref().map(Udi::to_string);
        let mut attrs: Vec<(&str, &str)> = vec![("xmlns", NS_PNP), ("version", "1.0")];
        if let Some(udi) = &udi {
            attrs.push(("udi", udi));
        }
        if let Some(sid) = &envelope.sid {
            attrs.push(("sid", sid));
        }
        if let Some(credentials) = &envelope.credentials {
            attrs.push(("usr", &credentials.username));
            attrs.push(("pwd", &credentials.password));
        }
        w.tag(NS_PNP_ROOT, &attrs, false);
        w
    }

    fn tag(&mut self, name: &str, attrs: &[(&str, &str)], empty: bool) {
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            escape_into(&mut self.out, value, true);
            self.out.push('"');
        }
        self.out.push_str(if empty { "/>" } else { ">" });
    }

    fn open(&mut self, name: &str) {
        self.tag(name, &[], false);
    }

    #[cfg(any(test, feature = "test-server"))]
    fn empty(&mut self, name: &str) {
        self.tag(name, &[], true);
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    fn leaf(&mut self, name: &str, text: &str) {
        self.open(name);
        escape_into(&mut self.out, text, false);
        self.close(name);
    }

    fn opt_leaf(&mut self, name: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.leaf(name, text);
        }
    }

    fn finish(mut self) -> String {
        self.close(NS_PNP_ROOT);
        self.out
    }
}

/// Local name of the envelope element.
const NS_PNP_ROOT: &str = "pnp";

fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// Encodes a message from the agent to the server.
pub fn encode_agent_message(message: &AgentMessage) -> String {
    let mut w = Writer::new(&message.envelope);
    match &message.body {
        AgentBody::WorkRequest(request) => write_work_request(&mut w, request),
        AgentBody::Response(response) => write_response(&mut w, response),
        AgentBody::Fault(fault) => write_fault(&mut w, fault),
    }
    w.finish()
}

/// Encodes a work-request (`POST /pnp/WORK-REQUEST`).
pub fn encode_work_request(envelope: &Envelope, request: &WorkRequest) -> String {
    let mut w = Writer::new(envelope);
    write_work_request(&mut w, request);
    w.finish()
}

/// Encodes a job's response (`POST /pnp/WORK-RESPONSE`).
pub fn encode_response(envelope: &Envelope, response: &Response) -> String {
    let mut w = Writer::new(envelope);
    write_response(&mut w, response);
    w.finish()
}

/// Encodes a fault response (`POST /pnp/WORK-RESPONSE`).
pub fn encode_fault(envelope: &Envelope, fault: &Fault) -> String {
    let mut w = Writer::new(envelope);
    write_fault(&mut w, fault);
    w.finish()
}

fn write_work_request(w: &mut Writer, request: &WorkRequest) {
    w.tag(
        "info",
        &[("xmlns", NS_WORK_INFO), ("correlator", &request.correlator)],
        false,
    );
    w.open("deviceId");
    w.opt_leaf("udi", request.udi.as_ref().map(Udi::to_string).as_deref());
    w.opt_leaf("hostname", request.hostname.as_deref());
    w.leaf("authRequired", bool_text(request.auth_required));
    w.leaf("viaProxy", bool_text(request.via_proxy));
    w.close("deviceId");
    w.close("info");
}

fn write_response(w: &mut Writer, response: &Response) {
    let namespace = response.service.namespace();
    let attrs = [
        ("xmlns", namespace.as_str()),
        ("correlator", response.correlator.as_str()),
        ("success", if response.success { "1" } else { "0" }),
    ];
    let has_body = match &response.body {
        ResponseBody::Empty => false,
        ResponseBody::DeviceInfo(reply) => *reply != DeviceInfoReply::default(),
        ResponseBody::Capability(_) | ResponseBody::Topology(_) => true,
    };
    if !has_body && response.error.is_none() {
        w.tag("response", &attrs, true);
        return;
    }
    w.tag("response", &attrs, false);
    match &response.body {
        ResponseBody::Empty => {}
        ResponseBody::DeviceInfo(reply) => write_device_info_reply(w, reply),
        ResponseBody::Capability(services) => {
            w.open("serviceList");
            for service in services {
                w.leaf("service", service);
            }
            w.close("serviceList");
        }
        ResponseBody::Topology(t) => {
            w.open("topology");
            w.opt_leaf("interface", t.interface.as_deref());
            w.opt_leaf("vlan", t.vlan.map(|v| v.to_string()).as_deref());
            w.opt_leaf("macAddress", t.mac_address.as_deref());
            w.opt_leaf("ipAddress", t.ip_address.map(|a| a.to_string()).as_deref());
            w.close("topology");
        }
    }
    if let Some(error) = &response.error {
        w.open("errorInfo");
        w.leaf("errorSeverity", &error.severity);
        w.leaf("errorCode", &error.code);
        w.leaf("errorMessage", &error.message);
        w.close("errorInfo");
    }
    w.close("response");
}

fn write_device_info_reply(w: &mut Writer, reply: &DeviceInfoReply) {
    if let Some(udi) = &reply.udi {
        w.open("udi");
        w.leaf("primary-chassis", &udi.to_string());
        w.close("udi");
    }
    if let Some(image) = &reply.image {
        w.open("imageInfo");
        w.opt_leaf("versionString", image.version_string.as_deref());
        w.opt_leaf("imageFile", image.image_file.as_deref());
        w.close("imageInfo");
    }
    if let Some(hardware) = &reply.hardware {
        w.open("hardwareInfo");
        w.opt_leaf("hostname", hardware.hostname.as_deref());
        w.opt_leaf("platformName", hardware.platform_name.as_deref());
        w.opt_leaf("boardId", hardware.board_id.as_deref());
        w.close("hardwareInfo");
    }
}

fn write_fault(w: &mut Writer, fault: &Fault) {
    w.tag("response", &[("xmlns", NS_FAULT)], false);
    w.open("fault");
    w.leaf("faultcode", &fault.code);
    w.leaf("faultstring", &fault.string);
    w.open("detail");
    w.tag(
        "xsvc-err:error",
        &[("xmlns:xsvc-err", NS_XSVC_ERROR)],
        false,
    );
    w.leaf("xsvc-err:details", &fault.details);
    w.close("xsvc-err:error");
    w.close("detail");
    w.close("fault");
    w.close("response");
}

// ---------------------------------------------------------------------------
// Server side (unit tests or feature `test-server`): what the server sends.
// ---------------------------------------------------------------------------

/// Encodes a message from the server to the agent (for a test server).
#[cfg(any(test, feature = "test-server"))]
pub fn encode_server_message(message: &ServerMessage) -> String {
    let mut w = Writer::new(&message.envelope);
    match &message.body {
        ServerBody::Bye { correlator } => {
            let mut attrs = vec![("xmlns", NS_WORK_INFO)];
            if let Some(correlator) = correlator {
                attrs.push(("correlator", correlator));
            }
            w.tag("info", &attrs, false);
            w.open("workInfo");
            w.empty("bye");
            w.close("workInfo");
            w.close("info");
        }
        ServerBody::Request(request) => write_request(&mut w, request),
    }
    w.finish()
}

#[cfg(any(test, feature = "test-server"))]
fn write_request(w: &mut Writer, request: &Request) {
    let namespace = request.job.service().namespace();
    let attrs = [
        ("xmlns", namespace.as_str()),
        ("correlator", request.correlator.as_str()),
    ];
    let empty = matches!(
        request.job,
        Job::Capability | Job::Topology | Job::Unsupported { .. }
    );
    w.tag("request", &attrs, empty);
    if empty {
        return;
    }
    match &request.job {
        Job::DeviceInfo(kind) => w.tag("deviceInfo", &[("type", kind.name())], true),
        Job::ConfigUpgrade(config) => {
            match &config.details {
                Some(details) => w.tag("config", &[("details", details)], false),
                None => w.open("config"),
            }
            w.open("copy");
            write_source(w, &config.source);
            w.leaf("applyTo", config.apply_to.name());
            if config.abort_on_syntax_fault {
                w.empty("abortOnSyntaxFault");
            }
            w.close("copy");
            w.close("config");
            write_reload(w, &config.reload);
        }
        Job::ImageInstall(image) => {
            w.open("image");
            w.open("copy");
            write_source(w, &image.source);
            if let Some(destination) = &image.destination {
                w.open("destination");
                w.leaf("location", destination);
                w.close("destination");
            }
            w.close("copy");
            w.close("image");
            write_reload(w, &image.reload);
        }
        Job::Backoff(backoff) => {
            w.open("backoff");
            w.opt_leaf("reason", backoff.reason.as_deref());
            match backoff.action {
                BackoffAction::CallbackAfter(after) => {
                    let secs = after.as_secs();
                    w.open("callbackAfter");
                    w.leaf("hours", &(secs / 3600).to_string());
                    w.leaf("minutes", &(secs / 60 % 60).to_string());
                    w.leaf("seconds", &(secs % 60).to_string());
                    w.close("callbackAfter");
                }
                BackoffAction::DefaultMinutes(minutes) => {
                    w.leaf("defaultMinutes", &minutes.to_string());
                }
                BackoffAction::Terminate => w.empty("terminate"),
            }
            w.close("backoff");
        }
        Job::Capability | Job::Topology | Job::Unsupported { .. } => {}
    }
    w.close("request");
}

#[cfg(any(test, feature = "test-server"))]
fn write_source(w: &mut Writer, source: &Source) {
    w.open("source");
    w.leaf("location", &source.location);
    w.opt_leaf("checksum", source.checksum.as_deref());
    w.close("source");
}

#[cfg(any(test, feature = "test-server"))]
fn write_reload(w: &mut Writer, reload: &ReloadPolicy) {
    match reload {
        ReloadPolicy::Unspecified => {}
        ReloadPolicy::NoReload => w.empty("noReload"),
        ReloadPolicy::Reload(r) => {
            w.open("reload");
            w.opt_leaf("reason", r.reason.as_deref());
            w.opt_leaf("delayIn", r.delay_in.map(|d| d.to_string()).as_deref());
            w.opt_leaf("user", r.user.as_deref());
            w.opt_leaf("saveConfig", r.save_config.map(bool_text));
            w.close("reload");
        }
    }
}
