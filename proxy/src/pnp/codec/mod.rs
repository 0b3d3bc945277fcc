//! Pure PnP XML codec: bytes in, values out; values in, bytes out. No I/O.
//!
//! Both directions of the Cisco Plug-and-Play protocol are covered (see
//! `docs/pnp-protocol.md`):
//!
//! - [`parse_server_message`]: what the PnP server sends the agent (jobs,
//!   backoff, `bye`); `encode_server_message` writes the same (for a test
//!   server).
//! - [`encode_agent_message`] (and the shorthands [`encode_work_request`],
//!   [`encode_response`], [`encode_fault`]): what the agent sends;
//!   `parse_agent_message` reads it back (for a test server).
//!
//! The server side, `parse_agent_message` and `encode_server_message`, is
//! built only for unit tests or with the crate feature `test-server` (the
//! test PnP server and the fuzz targets enable it): the daemon never reads
//! what an agent sends nor writes what a server sends.
//!
//! # Layout
//!
//! - this file: the caps, the protocol constants and [`PnpError`];
//! - `model`: the message types of both directions;
//! - `reader`: bytes to a small element tree with every cap enforced, and
//!   the lookups the parsers make in it;
//! - `parse`: the element tree to messages;
//! - `encode`: messages to bytes;
//! - `tests`: the unit tests, by concern.
//!
//! # Tolerance
//!
//! Elements and attributes are matched by local name, ignoring any prefix and
//! ASCII case (so `callbackAfter` and `callBackAfter` both match). The service
//! of a `<request>` or `<response>` is the namespace URI of that element,
//! `urn:cisco:pnp:<service>`, resolved through its prefix; children may be in
//! any namespace or none. An XML declaration, leading whitespace and a UTF-8
//! byte order mark are optional. Unknown elements and attributes are ignored.
//! Text values are trimmed of XML whitespace; an empty optional element counts
//! as absent.
//!
//! # Hostile input
//!
//! Bodies over [`BODY_CAP`] bytes, non-UTF-8 bodies, any `<!DOCTYPE`,
//! `<!ENTITY` or other markup declaration (`<!` followed by a letter,
//! anywhere in the body, even inside a comment: PnP never carries one), nesting
//! deeper than [`DEPTH_CAP`], more than [`ELEMENT_CAP`] elements, more than
//! [`ATTRIBUTE_CAP`] attributes on one element, and attribute values or texts
//! over [`VALUE_CAP`] bytes are refused with a specific [`PnpError`]. Entity
//! references other than the five predefined ones and character references
//! are refused, so no entity is ever expanded.
//!
//! # Output
//!
//! Every encoded message is [`XML_DECLARATION`], a newline, then
//! `<pnp xmlns="urn:cisco:pnp" version="1.0" udi="…">` (with `sid="…"` when the
//! envelope holds one) and the message, without further whitespace. Text and
//! attribute values are escaped; tab, line feed and carriage return in
//! attribute values become character references so they survive attribute
//! normalization; characters XML 1.0 forbids become U+FFFD.

use std::time::Duration;

use crate::udi::UdiError;

mod encode;
mod model;
mod parse;
mod reader;
#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "test-server"))]
pub use encode::encode_server_message;
pub use encode::{encode_agent_message, encode_fault, encode_response, encode_work_request};
pub use model::{
    AgentBody, AgentMessage, ApplyTo, Backoff, BackoffAction, ConfigUpgrade, Credentials,
    DeviceInfoReply, DeviceInfoType, Envelope, ErrorInfo, Fault, HardwareInfo, ImageInfo,
    ImageInstall, Job, Reload, ReloadPolicy, Request, Response, ResponseBody, ServerBody,
    ServerMessage, Service, SmiRefusal, Source, Topology, WorkRequest, correlator,
};
#[cfg(any(test, feature = "test-server"))]
pub use parse::parse_agent_message;
pub use parse::parse_server_message;

/// Largest body accepted by the parsers, in bytes (1 MiB).
pub const BODY_CAP: usize = 1024 * 1024;
/// Deepest element nesting accepted (the root counts as 1).
pub const DEPTH_CAP: usize = 32;
/// Longest attribute value or element text accepted, in bytes (64 KiB).
pub const VALUE_CAP: usize = 64 * 1024;
/// Most elements accepted in one body.
pub const ELEMENT_CAP: usize = 10_000;
/// Most attributes (namespace declarations included) accepted on one element.
pub const ATTRIBUTE_CAP: usize = 64;

/// The XML declaration that starts every encoded message.
pub const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
/// Namespace of the `<pnp>` envelope.
pub const NS_PNP: &str = "urn:cisco:pnp";
/// Prefix of every service namespace, `urn:cisco:pnp:<service>`.
pub const NS_SERVICE_PREFIX: &str = "urn:cisco:pnp:";
/// Namespace of work-requests and `bye`.
pub const NS_WORK_INFO: &str = "urn:cisco:pnp:work-info";
/// Namespace of a fault response.
pub const NS_FAULT: &str = "urn:cisco:pnp:fault";
/// Namespace of the fault detail (prefix `xsvc-err`).
pub const NS_XSVC_ERROR: &str = "urn:cisco:pnp:error";
/// `faultcode` of a fault caused by what the server sent.
pub const FAULT_CODE_CLIENT: &str = "XSVC:Client";

/// Cisco SMI Proxy's refusal of a service outside its seven.
pub const PNP_ERROR_UNSUPPORTED_REQUEST: &str = "SMI PROXY:Not supported service request";
/// Cisco SMI Proxy's refusal of a config-upgrade applied to running-config.
pub const XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED: &str =
    "SMI PROXY: Config upgrade apply to Running Config is not supported";
/// Cisco SMI Proxy's refusal of device-info `hardware`
/// (enum `XSVC_ERROR_DEVICE_INFO_UNSUPPORTED`).
pub const XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_HARDWARE: &str =
    "SMI PROXY:Client device hardware info not supported";
/// Cisco SMI Proxy's refusal of device-info `filesystem`
/// (enum `XSVC_ERROR_DEVICE_INFO_UNSUPPORTED`).
pub const XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_FILESYSTEM: &str =
    "SMI PROXY:Client device filesystem info not supported";
/// `errorSeverity` of every refusal the proxy sends.
pub const ERROR_SEVERITY_ERROR: &str = "ERROR";

/// MODELLED: the `serviceList` of the capability answer. No public sample of
/// a capability response exists; this lists exactly the seven services the
/// SMI Proxy guide names as supported, spelled as the guide spells them.
pub const CAPABILITY_SERVICES: [&str; 7] = [
    "capabilities",
    "config-upgrade",
    "device-info",
    "image-install",
    "topology",
    "backoff",
    "bye",
];

/// Longest `callbackAfter` honoured: 47 h 59 min 59 s (longer ones are clamped).
pub const MAX_CALLBACK: Duration = Duration::from_secs(47 * 3600 + 59 * 60 + 59);
/// Smallest `defaultMinutes` honoured (smaller ones are raised to it).
pub const DEFAULT_MINUTES_MIN: u32 = 1;
/// Largest `defaultMinutes` honoured (larger ones are lowered to it).
pub const DEFAULT_MINUTES_MAX: u32 = 2880;

/// Why a PnP body was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PnpError {
    /// The body is larger than [`BODY_CAP`].
    #[error("PnP body is {len} bytes, over the {cap}-byte cap")]
    BodyTooLarge {
        /// Length of the body.
        len: usize,
        /// The cap.
        cap: usize,
    },
    /// The body holds no element.
    #[error("PnP body holds no XML element")]
    Empty,
    /// The body is not valid UTF-8.
    #[error("PnP body is not UTF-8: invalid byte sequence at byte {offset}")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The body holds a DOCTYPE or other markup declaration.
    #[error(
        "PnP body holds a markup declaration (<!{found}); DTDs and entity declarations are refused"
    )]
    DtdRefused {
        /// The start of the declaration keyword, e.g. `DOCTYPE`.
        found: String,
    },
    /// The XML is not well-formed.
    #[error("malformed XML near byte {offset}: {source}")]
    Xml {
        /// Byte offset where the parser stopped.
        offset: u64,
        /// The parser's complaint.
        #[source]
        source: quick_xml::Error,
    },
    /// Elements nest deeper than [`DEPTH_CAP`].
    #[error("XML elements nest deeper than {cap} levels")]
    TooDeep {
        /// The cap.
        cap: usize,
    },
    /// The body holds more than [`ELEMENT_CAP`] elements.
    #[error("PnP body holds more than {cap} elements")]
    TooManyElements {
        /// The cap.
        cap: usize,
    },
    /// An element has more than [`ATTRIBUTE_CAP`] attributes.
    #[error("element <{element}> has more than {cap} attributes")]
    TooManyAttributes {
        /// Local name of the element.
        element: String,
        /// The cap.
        cap: usize,
    },
    /// An attribute value or element text is longer than [`VALUE_CAP`].
    #[error("a value in element <{element}> is longer than {cap} bytes")]
    ValueTooLong {
        /// Local name of the element.
        element: String,
        /// The cap.
        cap: usize,
    },
    /// An entity reference other than `lt`, `gt`, `amp`, `apos`, `quot`.
    #[error("reference to unknown entity &{name}; (only the predefined XML entities are accepted)")]
    UnknownEntity {
        /// The entity name.
        name: String,
    },
    /// More than one top-level element.
    #[error("PnP body holds more than one root element")]
    MultipleRoots,
    /// The body ends before an element is closed.
    #[error("PnP body ends inside element <{element}>")]
    Truncated {
        /// Local name of the innermost open element.
        element: String,
    },
    /// The root element is not `<pnp>`.
    #[error("root element is <{found}>, not <pnp>")]
    NotPnp {
        /// Local name of the root element.
        found: String,
    },
    /// `<pnp>` holds a message of the wrong kind.
    #[error("<pnp> holds <{found}> where {expected} was expected")]
    UnexpectedMessage {
        /// Local name of the element found.
        found: String,
        /// What this direction accepts.
        expected: &'static str,
    },
    /// A required element is missing.
    #[error("missing <{element}> in <{parent}>")]
    MissingElement {
        /// Where it was looked for.
        parent: &'static str,
        /// What was looked for.
        element: &'static str,
    },
    /// A required element is present but empty.
    #[error("element <{element}> is empty")]
    EmptyElement {
        /// Local name of the element.
        element: &'static str,
    },
    /// A required attribute is missing or empty.
    #[error("missing attribute {attribute} on <{element}>")]
    MissingAttribute {
        /// Local name of the element.
        element: &'static str,
        /// Local name of the attribute.
        attribute: &'static str,
    },
    /// The namespace of a `<request>` or `<response>` is not
    /// `urn:cisco:pnp:<service>` with a service name of ASCII letters, digits,
    /// `-`, `_` and `.`.
    #[error("<{element}> is in namespace {namespace:?}, not urn:cisco:pnp:<service>")]
    NoService {
        /// Local name of the element.
        element: &'static str,
        /// Its namespace URI, if any.
        namespace: Option<String>,
    },
    /// A boolean field is not `1`, `0`, `true` or `false`.
    #[error("{field} is {value:?}, not 1, 0, true or false")]
    BadBool {
        /// The field.
        field: &'static str,
        /// The value (its first 64 characters).
        value: String,
    },
    /// A number field is not a non-negative integer in range.
    #[error("{field} is {value:?}, not a non-negative integer in range")]
    BadNumber {
        /// The field.
        field: &'static str,
        /// The value (its first 64 characters).
        value: String,
    },
    /// An address field is not an IPv4 or IPv6 address.
    #[error("{field} is {value:?}, not an IP address")]
    BadAddress {
        /// The field.
        field: &'static str,
        /// The value (its first 64 characters).
        value: String,
    },
    /// A UDI does not follow the UDI grammar.
    #[error("bad UDI in {field}: {source}")]
    BadUdi {
        /// Where the UDI was.
        field: &'static str,
        /// What is wrong with it.
        #[source]
        source: UdiError,
    },
    /// Two mutually exclusive elements are both present.
    #[error("<{first}> and <{second}> are mutually exclusive")]
    Conflicting {
        /// The first element.
        first: &'static str,
        /// The second element.
        second: &'static str,
    },
}
