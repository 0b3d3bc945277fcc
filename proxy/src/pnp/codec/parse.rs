//! The element tree to messages: [`parse_server_message`] (what the server
//! sends the agent, always built) and, for the test server and fuzzing,
//! `parse_agent_message` (what the agent sends the server; unit tests or
//! feature `test-server`).

use std::time::Duration;

#[cfg(any(test, feature = "test-server"))]
use super::model::{
    AgentBody, AgentMessage, DeviceInfoReply, ErrorInfo, Fault, HardwareInfo, ImageInfo, Response,
    ResponseBody, Topology, WorkRequest,
};
use super::model::{
    ApplyTo, Backoff, BackoffAction, ConfigUpgrade, DeviceInfoType, ImageInstall, Job, Reload,
    ReloadPolicy, Request, ServerBody, ServerMessage, Service, Source,
};
#[cfg(any(test, feature = "test-server"))]
use super::reader::snippet;
use super::reader::{
    Node, bool_of, message_of, number_of, parse_bool, parse_document, parse_number, required_attr,
    service_of,
};
use super::{DEFAULT_MINUTES_MAX, DEFAULT_MINUTES_MIN, MAX_CALLBACK, PnpError};
#[cfg(any(test, feature = "test-server"))]
use crate::udi::Udi;

/// Parses a message the server sent the agent.
///
/// A `<request>` whose namespace names a service outside those modelled by
/// [`Job`] gives [`Job::Unsupported`], not an error; an `<info>` holding a
/// `<bye>` gives [`ServerBody::Bye`].
pub fn parse_server_message(body: &[u8]) -> Result<ServerMessage, PnpError> {
    let (envelope, root) = parse_document(body)?;
    let message = message_of(&root, &["request", "info"], "<request> or <info>")?;
    let body = if message.is("info") {
        if message.find("bye").is_none() {
            return Err(PnpError::MissingElement {
                parent: "info",
                element: "bye",
            });
        }
        ServerBody::Bye {
            correlator: message.attr("correlator").map(str::to_owned),
        }
    } else {
        ServerBody::Request(parse_request(message)?)
    };
    Ok(ServerMessage { envelope, body })
}

fn parse_request(request: &Node) -> Result<Request, PnpError> {
    let service = service_of(request, "request")?;
    let correlator = required_attr(request, "request", "correlator")?;
    let job = match Service::from_name(&service) {
        Service::DeviceInfo => Job::DeviceInfo(
            request
                .find("deviceInfo")
                .and_then(|d| d.attr("type"))
                .map_or(DeviceInfoType::All, DeviceInfoType::from_name),
        ),
        Service::ConfigUpgrade => Job::ConfigUpgrade(parse_config_upgrade(request)?),
        Service::ImageInstall => Job::ImageInstall(ImageInstall {
            source: parse_source(request, "copy")?,
            destination: request
                .find("destination")
                .and_then(|d| d.text_of("location")),
            reload: parse_reload(request)?,
        }),
        Service::Capability => Job::Capability,
        Service::Topology => Job::Topology,
        Service::Backoff => Job::Backoff(parse_backoff(request)?),
        Service::Other(service) => Job::Unsupported { service },
    };
    Ok(Request { correlator, job })
}

fn parse_source(request: &Node, parent: &'static str) -> Result<Source, PnpError> {
    let source = request.find("source").ok_or(PnpError::MissingElement {
        parent,
        element: "source",
    })?;
    let location = source.find("location").ok_or(PnpError::MissingElement {
        parent: "source",
        element: "location",
    })?;
    let location = location.value().ok_or(PnpError::EmptyElement {
        element: "location",
    })?;
    Ok(Source {
        location: location.to_owned(),
        checksum: source.text_of("checksum"),
    })
}

fn parse_config_upgrade(request: &Node) -> Result<ConfigUpgrade, PnpError> {
    let abort_on_syntax_fault = match request.find("abortOnSyntaxFault") {
        None => false,
        Some(flag) => flag
            .value()
            .map(|v| parse_bool("abortOnSyntaxFault", v))
            .transpose()?
            .unwrap_or(true),
    };
    Ok(ConfigUpgrade {
        details: request
            .find("config")
            .and_then(|c| c.attr("details"))
            .map(str::to_owned),
        source: parse_source(request, "copy")?,
        apply_to: request
            .find("applyTo")
            .and_then(Node::value)
            .map_or(ApplyTo::Startup, ApplyTo::from_name),
        abort_on_syntax_fault,
        reload: parse_reload(request)?,
    })
}

fn parse_reload(request: &Node) -> Result<ReloadPolicy, PnpError> {
    let reload = request.child("reload").or_else(|| request.find("reload"));
    let no_reload = request.find("noReload");
    match (reload, no_reload) {
        (Some(_), Some(_)) => Err(PnpError::Conflicting {
            first: "reload",
            second: "noReload",
        }),
        (None, Some(_)) => Ok(ReloadPolicy::NoReload),
        (None, None) => Ok(ReloadPolicy::Unspecified),
        (Some(reload), None) => Ok(ReloadPolicy::Reload(Reload {
            reason: reload.text_of("reason"),
            delay_in: number_of(reload, "delayIn")?,
            user: reload.text_of("user"),
            save_config: bool_of(reload, "saveConfig")?,
        })),
    }
}

fn parse_backoff(request: &Node) -> Result<Backoff, PnpError> {
    let backoff = request.find("backoff").unwrap_or(request);
    let callback = backoff.find("callbackAfter");
    let default_minutes = backoff.find("defaultMinutes");
    let terminate = backoff.find("terminate");
    let present: Vec<&'static str> = [
        (callback.is_some(), "callbackAfter"),
        (default_minutes.is_some(), "defaultMinutes"),
        (terminate.is_some(), "terminate"),
    ]
    .iter()
    .filter(|(here, _)| *here)
    .map(|(_, name)| *name)
    .collect();
    if let [first, second, ..] = present[..] {
        return Err(PnpError::Conflicting { first, second });
    }
    let action = if let Some(callback) = callback {
        let hours: u64 = number_of(callback, "hours")?.unwrap_or(0);
        let minutes: u64 = number_of(callback, "minutes")?.unwrap_or(0);
        let seconds: u64 = number_of(callback, "seconds")?.unwrap_or(0);
        let total = hours
            .saturating_mul(3600)
            .saturating_add(minutes.saturating_mul(60))
            .saturating_add(seconds);
        BackoffAction::CallbackAfter(Duration::from_secs(total).min(MAX_CALLBACK))
    } else if let Some(minutes) = default_minutes {
        let value = minutes.value().ok_or(PnpError::EmptyElement {
            element: "defaultMinutes",
        })?;
        let minutes: u64 = parse_number("defaultMinutes", value)?;
        let minutes = minutes.clamp(
            u64::from(DEFAULT_MINUTES_MIN),
            u64::from(DEFAULT_MINUTES_MAX),
        );
        BackoffAction::DefaultMinutes(u32::try_from(minutes).unwrap_or(DEFAULT_MINUTES_MAX))
    } else if terminate.is_some() {
        BackoffAction::Terminate
    } else {
        return Err(PnpError::MissingElement {
            parent: "backoff",
            element: "callbackAfter, defaultMinutes or terminate",
        });
    };
    Ok(Backoff {
        reason: backoff.text_of("reason"),
        action,
    })
}

// ---------------------------------------------------------------------------
// Server side (unit tests or feature `test-server`): what the agent sent.
// ---------------------------------------------------------------------------

/// Parses a message the agent sent the server (for a test server): a
/// work-request, a response, or a fault.
#[cfg(any(test, feature = "test-server"))]
pub fn parse_agent_message(body: &[u8]) -> Result<AgentMessage, PnpError> {
    let (envelope, root) = parse_document(body)?;
    let message = message_of(&root, &["info", "response"], "<info> or <response>")?;
    let body = if message.is("info") {
        AgentBody::WorkRequest(parse_work_request(message)?)
    } else {
        let service = service_of(message, "response")?;
        if service.eq_ignore_ascii_case("fault") || message.child("fault").is_some() {
            AgentBody::Fault(parse_fault(message))
        } else {
            AgentBody::Response(parse_response(message, Service::from_name(&service))?)
        }
    };
    Ok(AgentMessage { envelope, body })
}

#[cfg(any(test, feature = "test-server"))]
fn parse_work_request(info: &Node) -> Result<WorkRequest, PnpError> {
    let correlator = required_attr(info, "info", "correlator")?;
    let device = info.find("deviceId").ok_or(PnpError::MissingElement {
        parent: "info",
        element: "deviceId",
    })?;
    Ok(WorkRequest {
        correlator,
        udi: device
            .find("udi")
            .and_then(Node::value)
            .map(|u| udi_of(u, "deviceId udi"))
            .transpose()?,
        hostname: device.text_of("hostname"),
        auth_required: bool_of(device, "authRequired")?.unwrap_or(false),
        via_proxy: bool_of(device, "viaProxy")?.unwrap_or(false),
    })
}

#[cfg(any(test, feature = "test-server"))]
fn parse_fault(response: &Node) -> Fault {
    let fault = response.find("fault").unwrap_or(response);
    Fault {
        code: fault.text_of("faultcode").unwrap_or_default(),
        string: fault.text_of("faultstring").unwrap_or_default(),
        details: fault.text_of("details").unwrap_or_default(),
    }
}

#[cfg(any(test, feature = "test-server"))]
fn parse_response(response: &Node, service: Service) -> Result<Response, PnpError> {
    let correlator = required_attr(response, "response", "correlator")?;
    let success = response.attr("success").ok_or(PnpError::MissingAttribute {
        element: "response",
        attribute: "success",
    })?;
    let success = parse_bool("success", success)?;
    let error = response.child("errorInfo").map(|e| ErrorInfo {
        severity: e.text_of("errorSeverity").unwrap_or_default(),
        code: e.text_of("errorCode").unwrap_or_default(),
        message: e.text_of("errorMessage").unwrap_or_default(),
    });
    let body = match service {
        Service::DeviceInfo => parse_device_info_reply(response)?,
        Service::Capability => response
            .child("serviceList")
            .map_or(ResponseBody::Empty, |list| {
                ResponseBody::Capability(
                    list.children
                        .iter()
                        .filter(|c| c.is("service"))
                        .filter_map(|c| c.value().map(str::to_owned))
                        .collect(),
                )
            }),
        Service::Topology => match response.child("topology") {
            None => ResponseBody::Empty,
            Some(t) => ResponseBody::Topology(Topology {
                interface: t.text_of("interface"),
                vlan: number_of(t, "vlan")?,
                mac_address: t.text_of("macAddress"),
                ip_address: t
                    .find("ipAddress")
                    .and_then(Node::value)
                    .map(|v| {
                        v.parse().map_err(|_| PnpError::BadAddress {
                            field: "ipAddress",
                            value: snippet(v),
                        })
                    })
                    .transpose()?,
            }),
        },
        _ => ResponseBody::Empty,
    };
    Ok(Response {
        service,
        correlator,
        success,
        body,
        error,
    })
}

#[cfg(any(test, feature = "test-server"))]
fn parse_device_info_reply(response: &Node) -> Result<ResponseBody, PnpError> {
    let udi = match response.child("udi") {
        None => None,
        Some(u) => u
            .find("primary-chassis")
            .and_then(Node::value)
            .or_else(|| u.value())
            .map(|v| udi_of(v, "primary-chassis"))
            .transpose()?,
    };
    let image = response.child("imageInfo").map(|i| ImageInfo {
        version_string: i.text_of("versionString"),
        image_file: i.text_of("imageFile"),
    });
    let hardware = response.child("hardwareInfo").map(|h| HardwareInfo {
        hostname: h.text_of("hostname"),
        platform_name: h.text_of("platformName"),
        board_id: h.text_of("boardId"),
    });
    let reply = DeviceInfoReply {
        udi,
        image,
        hardware,
    };
    Ok(if reply == DeviceInfoReply::default() {
        ResponseBody::Empty
    } else {
        ResponseBody::DeviceInfo(reply)
    })
}

#[cfg(any(test, feature = "test-server"))]
fn udi_of(text: &str, field: &'static str) -> Result<Udi, PnpError> {
    text.parse()
        .map_err(|source| PnpError::BadUdi { field, source })
}
