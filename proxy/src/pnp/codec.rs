//! Pure PnP XML codec: bytes in, values out; values in, bytes out. No I/O.
//!
//! Both directions of the Cisco Plug-and-Play protocol are covered (see
//! `docs/pnp-protocol.md`):
//!
//! - [`parse_server_message`]: what the PnP server sends the agent (jobs,
//!   backoff, `bye`); [`encode_server_message`] writes the same (for a test
//!   server).
//! - [`encode_agent_message`] (and the shorthands [`encode_work_request`],
//!   [`encode_response`], [`encode_fault`]): what the agent sends;
//!   [`parse_agent_message`] reads it back (for a test server).
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
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use quick_xml::escape::{EscapeError, escape, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, XmlVersion};

use crate::udi::{Udi, UdiError};

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

/// Longest excerpt of an offending value quoted in an error.
const SNIPPET: usize = 64;

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

/// Device credentials the server may put on `<pnp>` (`usr`/`pwd` or
/// `username`/`password`). `Debug` never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// User name (empty if only a password was sent).
    pub username: String,
    /// Password (empty if only a user name was sent).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The attributes of the `<pnp>` envelope. Empty attribute values count as
/// absent; the encoders omit what is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The device the message is about.
    pub udi: Option<Udi>,
    /// Session token: set by the server, echoed by the agent.
    pub sid: Option<String>,
    /// Device credentials (server to agent only).
    pub credentials: Option<Credentials>,
}

impl Envelope {
    /// The envelope of an agent message: the device's UDI and the session
    /// token the server last set, if any.
    pub fn agent(udi: Udi, sid: Option<String>) -> Self {
        Self {
            udi: Some(udi),
            sid,
            credentials: None,
        }
    }
}

/// A PnP service, named by the last part of its namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// `capability` (the SMI Proxy guide says `capabilities`; both are read).
    Capability,
    /// `config-upgrade`.
    ConfigUpgrade,
    /// `device-info`.
    DeviceInfo,
    /// `image-install`.
    ImageInstall,
    /// `topology`.
    Topology,
    /// `backoff`.
    Backoff,
    /// Any other service, as named on the wire.
    Other(String),
}

impl Service {
    /// The service a name denotes (known names match ignoring ASCII case).
    pub fn from_name(name: &str) -> Self {
        const KNOWN: [(&str, Service); 7] = [
            ("capability", Service::Capability),
            ("capabilities", Service::Capability),
            ("config-upgrade", Service::ConfigUpgrade),
            ("device-info", Service::DeviceInfo),
            ("image-install", Service::ImageInstall),
            ("topology", Service::Topology),
            ("backoff", Service::Backoff),
        ];
        KNOWN
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map_or_else(|| Service::Other(name.to_owned()), |(_, s)| s.clone())
    }

    /// The name used on the wire, e.g. `device-info`.
    pub fn name(&self) -> &str {
        match self {
            Service::Capability => "capability",
            Service::ConfigUpgrade => "config-upgrade",
            Service::DeviceInfo => "device-info",
            Service::ImageInstall => "image-install",
            Service::Topology => "topology",
            Service::Backoff => "backoff",
            Service::Other(name) => name,
        }
    }

    /// The namespace URI, `urn:cisco:pnp:<name>`.
    pub fn namespace(&self) -> String {
        format!("{NS_SERVICE_PREFIX}{}", self.name())
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A message from the server to the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerMessage {
    /// The `<pnp>` attributes.
    pub envelope: Envelope,
    /// The message.
    pub body: ServerBody,
}

impl ServerMessage {
    /// The correlator the server sent, if any.
    pub fn correlator(&self) -> Option<&str> {
        match &self.body {
            ServerBody::Request(request) => Some(&request.correlator),
            ServerBody::Bye { correlator } => correlator.as_deref(),
        }
    }
}

/// What the server says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerBody {
    /// A job, or a backoff, in answer to a work-request.
    Request(Request),
    /// `<info xmlns="urn:cisco:pnp:work-info"><workInfo><bye/></workInfo></info>`.
    Bye {
        /// The correlator the server echoed, if any.
        correlator: Option<String>,
    },
}

/// A `<request xmlns="urn:cisco:pnp:<service>" correlator="…">`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The correlator to echo in the response (required on the wire).
    pub correlator: String,
    /// What the server asks for.
    pub job: Job,
}

/// The job a request carries, by service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Job {
    /// `device-info`: report the kind of data named.
    DeviceInfo(DeviceInfoType),
    /// `config-upgrade`: fetch a configuration and apply it.
    ConfigUpgrade(ConfigUpgrade),
    /// `image-install`: fetch an image and install it.
    ImageInstall(ImageInstall),
    /// `capability`: list the services supported.
    Capability,
    /// `topology`: report the device's neighbourhood.
    Topology,
    /// `backoff`: call back later, change the idle timer, or stop.
    Backoff(Backoff),
    /// Any other service (refused by the proxy).
    Unsupported {
        /// The service named by the request's namespace.
        service: String,
    },
}

impl Job {
    /// The service this job belongs to.
    pub fn service(&self) -> Service {
        match self {
            Job::DeviceInfo(_) => Service::DeviceInfo,
            Job::ConfigUpgrade(_) => Service::ConfigUpgrade,
            Job::ImageInstall(_) => Service::ImageInstall,
            Job::Capability => Service::Capability,
            Job::Topology => Service::Topology,
            Job::Backoff(_) => Service::Backoff,
            Job::Unsupported { service } => Service::Other(service.clone()),
        }
    }
}

/// The `type` of a `<deviceInfo>` request. A missing `<deviceInfo>` or
/// `type` reads as [`DeviceInfoType::All`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceInfoType {
    /// `image`.
    Image,
    /// `hardware`.
    Hardware,
    /// `filesystem`.
    Filesystem,
    /// `udi`.
    Udi,
    /// `profile`.
    Profile,
    /// `all`.
    All,
    /// Any other value, as sent.
    Other(String),
}

impl DeviceInfoType {
    /// The type a name denotes (ASCII case ignored).
    pub fn from_name(name: &str) -> Self {
        const KNOWN: [(&str, DeviceInfoType); 6] = [
            ("image", DeviceInfoType::Image),
            ("hardware", DeviceInfoType::Hardware),
            ("filesystem", DeviceInfoType::Filesystem),
            ("udi", DeviceInfoType::Udi),
            ("profile", DeviceInfoType::Profile),
            ("all", DeviceInfoType::All),
        ];
        KNOWN
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map_or_else(
                || DeviceInfoType::Other(name.to_owned()),
                |(_, t)| t.clone(),
            )
    }

    /// The name used on the wire.
    pub fn name(&self) -> &str {
        match self {
            DeviceInfoType::Image => "image",
            DeviceInfoType::Hardware => "hardware",
            DeviceInfoType::Filesystem => "filesystem",
            DeviceInfoType::Udi => "udi",
            DeviceInfoType::Profile => "profile",
            DeviceInfoType::All => "all",
            DeviceInfoType::Other(name) => name,
        }
    }
}

/// Where a file comes from: `<source><location>…</location><checksum>…</checksum></source>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// URL of the file (required).
    pub location: String,
    /// MD5 checksum in hex, as sent.
    pub checksum: Option<String>,
}

/// Which configuration a config-upgrade targets (`<applyTo>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyTo {
    /// `startup`; also what a missing `<applyTo>` means.
    Startup,
    /// `running` (refused by the proxy: SMI writes startup only).
    Running,
    /// Any other value, as sent (one server sends `AP`).
    Other(String),
}

impl ApplyTo {
    /// The target a name denotes (ASCII case ignored).
    pub fn from_name(name: &str) -> Self {
        if name.eq_ignore_ascii_case("startup") {
            ApplyTo::Startup
        } else if name.eq_ignore_ascii_case("running") {
            ApplyTo::Running
        } else {
            ApplyTo::Other(name.to_owned())
        }
    }

    /// The name used on the wire.
    pub fn name(&self) -> &str {
        match self {
            ApplyTo::Startup => "startup",
            ApplyTo::Running => "running",
            ApplyTo::Other(name) => name,
        }
    }
}

/// A `<reload>` element.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reload {
    /// `<reason>`.
    pub reason: Option<String>,
    /// `<delayIn>` (units unknown; servers send 0).
    pub delay_in: Option<u32>,
    /// `<user>`.
    pub user: Option<String>,
    /// `<saveConfig>` (`true`/`false`/`1`/`0`).
    pub save_config: Option<bool>,
}

/// What a job says about reloading afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ReloadPolicy {
    /// Neither `<reload>` nor `<noReload/>` (for image-install servers mean
    /// "image install always reloads").
    #[default]
    Unspecified,
    /// `<noReload/>`.
    NoReload,
    /// `<reload>…</reload>`.
    Reload(Reload),
}

/// A config-upgrade job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigUpgrade {
    /// The `details` attribute of `<config>` (`brief`, `errors`, `all`).
    pub details: Option<String>,
    /// The configuration file.
    pub source: Source,
    /// Target configuration.
    pub apply_to: ApplyTo,
    /// `<abortOnSyntaxFault/>` anywhere in the request (unless its text is
    /// `false` or `0`).
    pub abort_on_syntax_fault: bool,
    /// Reload afterwards.
    pub reload: ReloadPolicy,
}

/// An image-install job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInstall {
    /// The image file.
    pub source: Source,
    /// `<destination><location>` (some servers omit it).
    pub destination: Option<String>,
    /// Reload afterwards.
    pub reload: ReloadPolicy,
}

/// A backoff job.
///
/// Timer fields are not checked one by one against openpnpy's ranges (hours
/// 0–47, minutes and seconds 0–59): a field out of range is still a clear
/// duration, so the fields are summed and the total clamped to
/// [`MAX_CALLBACK`]. `defaultMinutes` is clamped to
/// [`DEFAULT_MINUTES_MIN`]..=[`DEFAULT_MINUTES_MAX`]. Non-numeric or negative
/// values are refused with [`PnpError::BadNumber`]; missing timer fields count
/// as 0; more than one of `callbackAfter`, `defaultMinutes`, `terminate` is
/// refused with [`PnpError::Conflicting`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// `<reason>`.
    pub reason: Option<String>,
    /// What to do.
    pub action: BackoffAction,
}

/// The instruction of a backoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackoffAction {
    /// `<callbackAfter>`: send the next work-request after this long.
    CallbackAfter(Duration),
    /// `<defaultMinutes>`: the new idle interval, in minutes.
    DefaultMinutes(u32),
    /// `<terminate/>`: never contact the server again for this device.
    Terminate,
}

/// A message from the agent to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentMessage {
    /// The `<pnp>` attributes.
    pub envelope: Envelope,
    /// The message.
    pub body: AgentBody,
}

/// What the agent says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentBody {
    /// A work-request (`POST /pnp/WORK-REQUEST`).
    WorkRequest(WorkRequest),
    /// A job's result (`POST /pnp/WORK-RESPONSE`).
    Response(Response),
    /// A fault: the agent could not understand the server's request.
    Fault(Fault),
}

/// A work-request, `<info xmlns="urn:cisco:pnp:work-info">`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkRequest {
    /// The correlator this cycle uses (required on the wire).
    pub correlator: String,
    /// `<deviceId><udi>`.
    pub udi: Option<Udi>,
    /// `<deviceId><hostname>`.
    pub hostname: Option<String>,
    /// `<authRequired>` (missing reads as `false`).
    pub auth_required: bool,
    /// `<viaProxy>` (missing reads as `false`).
    pub via_proxy: bool,
}

/// A `<response xmlns="urn:cisco:pnp:<service>" correlator="…" success="…">`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The service answered.
    pub service: Service,
    /// The request's correlator.
    pub correlator: String,
    /// `success` (`1`/`0`; `true`/`false` accepted when parsing).
    pub success: bool,
    /// Service-specific data.
    pub body: ResponseBody,
    /// `<errorInfo>`, after the body.
    pub error: Option<ErrorInfo>,
}

impl Response {
    /// A successful response without data, e.g. to config-upgrade or backoff.
    pub fn ok(service: Service, correlator: impl Into<String>) -> Self {
        Self {
            service,
            correlator: correlator.into(),
            success: true,
            body: ResponseBody::Empty,
            error: None,
        }
    }

    /// A failed response carrying `error`.
    pub fn failed(service: Service, correlator: impl Into<String>, error: ErrorInfo) -> Self {
        Self {
            service,
            correlator: correlator.into(),
            success: false,
            body: ResponseBody::Empty,
            error: Some(error),
        }
    }

    /// One of Cisco SMI Proxy's refusals (`success="0"`, see [`SmiRefusal`]).
    pub fn refused(service: Service, correlator: impl Into<String>, refusal: SmiRefusal) -> Self {
        Self::failed(service, correlator, refusal.error_info())
    }
}

/// The data a response carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ResponseBody {
    /// None.
    #[default]
    Empty,
    /// A device-info answer. One with every field `None` encodes like
    /// [`ResponseBody::Empty`].
    DeviceInfo(DeviceInfoReply),
    /// MODELLED: a capability answer, `<serviceList><service>…</service>…</serviceList>`
    /// (no public sample exists; see [`CAPABILITY_SERVICES`]).
    Capability(Vec<String>),
    /// MODELLED: a topology answer (see [`Topology`]).
    Topology(Topology),
}

impl ResponseBody {
    /// MODELLED: the capability answer listing [`CAPABILITY_SERVICES`].
    pub fn smi_proxy_capabilities() -> Self {
        ResponseBody::Capability(
            CAPABILITY_SERVICES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        )
    }
}

/// A device-info answer; only what is set is encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfoReply {
    /// `<udi><primary-chassis>`.
    pub udi: Option<Udi>,
    /// `<imageInfo>`.
    pub image: Option<ImageInfo>,
    /// `<hardwareInfo>`.
    pub hardware: Option<HardwareInfo>,
}

/// `<imageInfo>`; only what is set is encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// `<versionString>`, e.g. `15.2(7)E8`.
    pub version_string: Option<String>,
    /// `<imageFile>`, e.g. `flash:c2960x-universalk9-mz.152-7.E8.bin`.
    pub image_file: Option<String>,
}

/// `<hardwareInfo>`; only what is set is encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HardwareInfo {
    /// `<hostname>`.
    pub hostname: Option<String>,
    /// `<platformName>`, e.g. `WS-C2960X-48TS-L`.
    pub platform_name: Option<String>,
    /// `<boardId>` (the serial number).
    pub board_id: Option<String>,
}

/// MODELLED: the topology answer. No public sample exists; the project
/// chose this body, where each element appears only when set:
///
/// ```xml
/// <topology><interface>GigabitEthernet1/0/1</interface><vlan>1</vlan>
///   <macAddress>0011.2233.4455</macAddress><ipAddress>192.0.2.10</ipAddress></topology>
/// ```
///
/// It describes the proxied switch as the proxy sees it: the proxy's
/// interface and VLAN it is reached on, its MAC and IP addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    /// `<interface>`.
    pub interface: Option<String>,
    /// `<vlan>`.
    pub vlan: Option<u16>,
    /// `<macAddress>`, as written by the caller.
    pub mac_address: Option<String>,
    /// `<ipAddress>`.
    pub ip_address: Option<IpAddr>,
}

/// `<errorInfo>`: why a job failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorInfo {
    /// `<errorSeverity>`, e.g. `ERROR`.
    pub severity: String,
    /// `<errorCode>`, e.g. `PnP Service Error 1803`.
    pub code: String,
    /// `<errorMessage>`.
    pub message: String,
}

/// Cisco SMI Proxy's refusals. Project choice for the wire (the guide gives
/// only enum and string): `success="0"`, severity `ERROR`, the enum name as
/// `errorCode`, the string as `errorMessage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SmiRefusal {
    /// A service outside the seven ([`PNP_ERROR_UNSUPPORTED_REQUEST`]).
    UnsupportedRequest,
    /// config-upgrade to running-config ([`XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED`]).
    ConfigUpgradeRunning,
    /// device-info `hardware` ([`XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_HARDWARE`]).
    DeviceInfoHardware,
    /// device-info `filesystem` ([`XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_FILESYSTEM`]).
    DeviceInfoFilesystem,
}

impl SmiRefusal {
    /// Cisco's enum name, sent as `errorCode`.
    pub const fn code(self) -> &'static str {
        match self {
            SmiRefusal::UnsupportedRequest => "PNP_ERROR_UNSUPPORTED_REQUEST",
            SmiRefusal::ConfigUpgradeRunning => "XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED",
            SmiRefusal::DeviceInfoHardware | SmiRefusal::DeviceInfoFilesystem => {
                "XSVC_ERROR_DEVICE_INFO_UNSUPPORTED"
            }
        }
    }

    /// Cisco's error string, sent as `errorMessage`.
    pub const fn message(self) -> &'static str {
        match self {
            SmiRefusal::UnsupportedRequest => PNP_ERROR_UNSUPPORTED_REQUEST,
            SmiRefusal::ConfigUpgradeRunning => XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED,
            SmiRefusal::DeviceInfoHardware => XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_HARDWARE,
            SmiRefusal::DeviceInfoFilesystem => XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_FILESYSTEM,
        }
    }

    /// The `<errorInfo>` to send.
    pub fn error_info(self) -> ErrorInfo {
        ErrorInfo {
            severity: ERROR_SEVERITY_ERROR.to_owned(),
            code: self.code().to_owned(),
            message: self.message().to_owned(),
        }
    }
}

/// A fault response (`urn:cisco:pnp:fault`, no correlator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// `<faultcode>`, e.g. [`FAULT_CODE_CLIENT`].
    pub code: String,
    /// `<faultstring>`, e.g. `An unknown XML tag has been received`.
    pub string: String,
    /// `<detail><xsvc-err:error><xsvc-err:details>` (empty if absent).
    pub details: String,
}

impl Fault {
    /// A fault blaming what the server sent (`XSVC:Client`).
    pub fn client(string: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            code: FAULT_CODE_CLIENT.to_owned(),
            string: string.into(),
            details: details.into(),
        }
    }
}

/// A correlator of the form `CiscoPnP-1.0-<counter>-<random as 8 hex digits>`;
/// the caller supplies the randomness, keeping the codec pure.
pub fn correlator(counter: u64, random: u32) -> String {
    format!("CiscoPnP-1.0-{counter}-{random:08X}")
}

// ---------------------------------------------------------------------------
// Parsing: bytes to a small element tree, with every cap enforced.
// ---------------------------------------------------------------------------

/// One parsed element. The tree is at most [`DEPTH_CAP`] deep.
#[derive(Debug)]
struct Node {
    /// Namespace URI, if the name is bound to one.
    ns: Option<String>,
    /// Local name.
    name: String,
    /// Attributes other than namespace declarations: (local name, value).
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    /// Direct text content, references resolved, untrimmed.
    text: String,
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn snippet(value: &str) -> String {
    value.chars().take(SNIPPET).collect()
}

impl Node {
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.is(name))
    }

    /// First descendant (depth first, document order) with this local name.
    fn find(&self, name: &str) -> Option<&Node> {
        self.children
            .iter()
            .find_map(|c| if c.is(name) { Some(c) } else { c.find(name) })
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_matches(is_xml_space))
            .filter(|v| !v.is_empty())
    }

    /// Trimmed text, `None` when empty.
    fn value(&self) -> Option<&str> {
        Some(self.text.trim_matches(is_xml_space)).filter(|t| !t.is_empty())
    }

    /// Trimmed text of the first descendant so named.
    fn text_of(&self, name: &str) -> Option<String> {
        self.find(name).and_then(Node::value).map(str::to_owned)
    }
}

fn refuse_declarations(text: &str) -> Result<(), PnpError> {
    let bytes = text.as_bytes();
    for (at, pair) in bytes.windows(3).enumerate() {
        if pair[0] == b'<' && pair[1] == b'!' && pair[2].is_ascii_alphabetic() {
            let found = bytes
                .iter()
                .skip(at + 2)
                .take_while(|b| b.is_ascii_alphabetic())
                .take(16)
                .map(|&b| char::from(b))
                .collect();
            return Err(PnpError::DtdRefused { found });
        }
    }
    Ok(())
}

fn owned_namespace(ns: ResolveResult<'_>) -> Option<String> {
    match ns {
        ResolveResult::Bound(ns) => Some(ns.0.to_owned()),
        ResolveResult::Unbound | ResolveResult::Unknown(_) => None,
    }
}

fn xml_error(offset: u64, source: quick_xml::Error) -> PnpError {
    match source {
        quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(_, name)) => {
            PnpError::UnknownEntity {
                name: snippet(&name),
            }
        }
        source => PnpError::Xml { offset, source },
    }
}

fn make_node(ns: Option<String>, start: &BytesStart<'_>, offset: u64) -> Result<Node, PnpError> {
    let name = start.local_name().as_ref().to_owned();
    let mut attrs = Vec::new();
    for (count, attr) in start.attributes().enumerate() {
        if count >= ATTRIBUTE_CAP {
            return Err(PnpError::TooManyAttributes {
                element: snippet(&name),
                cap: ATTRIBUTE_CAP,
            });
        }
        let attr = attr.map_err(|e| xml_error(offset, e.into()))?;
        let too_long = || PnpError::ValueTooLong {
            element: snippet(&name),
            cap: VALUE_CAP,
        };
        if attr.key.as_namespace_binding().is_some() {
            if attr.value.len() > VALUE_CAP {
                return Err(too_long());
            }
            continue;
        }
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| xml_error(offset, e))?;
        if value.len() > VALUE_CAP {
            return Err(too_long());
        }
        attrs.push((
            attr.key.local_name().as_ref().to_owned(),
            legal_chars(&value).into_owned(),
        ));
    }
    Ok(Node {
        ns,
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// `value` with every character XML 1.0 forbids (which a character
/// reference can still smuggle in) replaced by U+FFFD, as the encoder does.
fn legal_chars(value: &str) -> Cow<'_, str> {
    if value.chars().all(is_xml_char) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(
            value
                .chars()
                .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    }
}

fn push_text(stack: &mut [Node], text: &str) -> Result<(), PnpError> {
    if let Some(node) = stack.last_mut() {
        if node.text.len() + text.len() > VALUE_CAP {
            return Err(PnpError::ValueTooLong {
                element: snippet(&node.name),
                cap: VALUE_CAP,
            });
        }
        node.text.push_str(&legal_chars(text));
    }
    Ok(())
}

fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node) -> Result<(), PnpError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None if root.is_some() => return Err(PnpError::MultipleRoots),
        None => *root = Some(node),
    }
    Ok(())
}

/// Parses a body into its root element, enforcing every cap.
fn parse_tree(body: &[u8]) -> Result<Node, PnpError> {
    if body.len() > BODY_CAP {
        return Err(PnpError::BodyTooLarge {
            len: body.len(),
            cap: BODY_CAP,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| PnpError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.trim_start_matches(is_xml_space);
    refuse_declarations(text)?;

    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut elements = 0usize;
    loop {
        let step = reader
            .read_resolved_event()
            .map(|(ns, event)| (owned_namespace(ns), event));
        let (ns, event) = match step {
            Ok(step) => step,
            Err(source) => return Err(xml_error(reader.error_position(), source)),
        };
        let offset = reader.buffer_position();
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                if stack.is_empty() && root.is_some() {
                    return Err(PnpError::MultipleRoots);
                }
                if stack.len() >= DEPTH_CAP {
                    return Err(PnpError::TooDeep { cap: DEPTH_CAP });
                }
                elements += 1;
                if elements > ELEMENT_CAP {
                    return Err(PnpError::TooManyElements { cap: ELEMENT_CAP });
                }
                let node = make_node(ns, start, offset)?;
                if matches!(event, Event::Start(_)) {
                    stack.push(node);
                } else {
                    attach(&mut stack, &mut root, node)?;
                }
            }
            Event::End(_) => {
                if let Some(node) = stack.pop() {
                    attach(&mut stack, &mut root, node)?;
                }
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content())?,
            Event::CData(c) => push_text(&mut stack, &c.xml10_content())?,
            Event::GeneralRef(r) => {
                let resolved: Cow<'_, str> = match r.resolve_char_ref() {
                    Ok(Some(c)) => Cow::Owned(c.to_string()),
                    Ok(None) => match resolve_predefined_entity(&r) {
                        Some(s) => Cow::Borrowed(s),
                        None => return Err(PnpError::UnknownEntity { name: snippet(&r) }),
                    },
                    Err(source) => return Err(xml_error(offset, source)),
                };
                push_text(&mut stack, &resolved)?;
            }
            Event::DocType(d) => {
                return Err(PnpError::DtdRefused {
                    found: format!("DOCTYPE {}", snippet(d.trim_matches(is_xml_space))),
                });
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(PnpError::Truncated {
            element: snippet(&open.name),
        });
    }
    root.ok_or(PnpError::Empty)
}

/// Parses the body, checks the root is `<pnp>`, and reads its attributes.
fn parse_document(body: &[u8]) -> Result<(Envelope, Node), PnpError> {
    let root = parse_tree(body)?;
    if !root.is("pnp") {
        return Err(PnpError::NotPnp {
            found: snippet(&root.name),
        });
    }
    let udi = root
        .attr("udi")
        .map(|u| {
            u.parse::<Udi>().map_err(|source| PnpError::BadUdi {
                field: "pnp udi attribute",
                source,
            })
        })
        .transpose()?;
    let sid = root.attr("sid").map(str::to_owned);
    let username = root.attr("usr").or_else(|| root.attr("username"));
    let password = root.attr("pwd").or_else(|| root.attr("password"));
    let credentials = (username.is_some() || password.is_some()).then(|| Credentials {
        username: username.unwrap_or_default().to_owned(),
        password: password.unwrap_or_default().to_owned(),
    });
    let envelope = Envelope {
        udi,
        sid,
        credentials,
    };
    Ok((envelope, root))
}

/// The first element child of `<pnp>`, which must be one of `names`.
fn message_of<'a>(
    root: &'a Node,
    names: &[&str],
    expected: &'static str,
) -> Result<&'a Node, PnpError> {
    let first = root.children.first().ok_or(PnpError::MissingElement {
        parent: "pnp",
        element: expected,
    })?;
    if names.iter().any(|n| first.is(n)) {
        Ok(first)
    } else {
        Err(PnpError::UnexpectedMessage {
            found: snippet(&first.name),
            expected,
        })
    }
}

fn service_of(node: &Node, element: &'static str) -> Result<String, PnpError> {
    let name = node.ns.as_deref().and_then(|ns| {
        let head = ns.get(..NS_SERVICE_PREFIX.len())?;
        let rest = ns.get(NS_SERVICE_PREFIX.len()..)?;
        let token = !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        (head.eq_ignore_ascii_case(NS_SERVICE_PREFIX) && token).then_some(rest)
    });
    name.map(str::to_owned).ok_or_else(|| PnpError::NoService {
        element,
        namespace: node.ns.as_deref().map(snippet),
    })
}

fn required_attr(
    node: &Node,
    element: &'static str,
    attribute: &'static str,
) -> Result<String, PnpError> {
    node.attr(attribute)
        .map(str::to_owned)
        .ok_or(PnpError::MissingAttribute { element, attribute })
}

fn parse_bool(field: &'static str, value: &str) -> Result<bool, PnpError> {
    let v = value.trim_matches(is_xml_space);
    if v == "1" || v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v == "0" || v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(PnpError::BadBool {
            field,
            value: snippet(v),
        })
    }
}

fn parse_number<T: std::str::FromStr>(field: &'static str, value: &str) -> Result<T, PnpError> {
    let v = value.trim_matches(is_xml_space);
    let digits = v.strip_prefix('+').unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PnpError::BadNumber {
            field,
            value: snippet(v),
        });
    }
    digits.parse().map_err(|_| PnpError::BadNumber {
        field,
        value: snippet(v),
    })
}

/// A descendant's text read as a number, `None` when absent or empty.
fn number_of<T: std::str::FromStr>(node: &Node, name: &'static str) -> Result<Option<T>, PnpError> {
    node.find(name)
        .and_then(Node::value)
        .map(|v| parse_number(name, v))
        .transpose()
}

fn bool_of(node: &Node, name: &'static str) -> Result<Option<bool>, PnpError> {
    node.find(name)
        .and_then(Node::value)
        .map(|v| parse_bool(name, v))
        .transpose()
}

fn udi_of(text: &str, field: &'static str) -> Result<Udi, PnpError> {
    text.parse()
        .map_err(|source| PnpError::BadUdi { field, source })
}

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

/// Parses a message the agent sent the server (for a test server): a
/// work-request, a response, or a fault.
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

fn parse_fault(response: &Node) -> Fault {
    let fault = response.find("fault").unwrap_or(response);
    Fault {
        code: fault.text_of("faultcode").unwrap_or_default(),
        string: fault.text_of("faultstring").unwrap_or_default(),
        details: fault.text_of("details").unwrap_or_default(),
    }
}

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

// ---------------------------------------------------------------------------
// Encoding.
// ---------------------------------------------------------------------------

/// Whether XML 1.0 allows this character at all.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

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

/// Encodes a message from the server to the agent (for a test server).
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

fn write_source(w: &mut Writer, source: &Source) {
    w.open("source");
    w.leaf("location", &source.location);
    w.opt_leaf("checksum", source.checksum.as_deref());
    w.close("source");
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const UDI: &str = "PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB";
    const CORR: &str = "CiscoPnP-1.0-1465-25A1212C";

    fn udi() -> Udi {
        UDI.parse().unwrap()
    }

    fn server(xml: &str) -> ServerMessage {
        parse_server_message(xml.as_bytes()).unwrap()
    }

    fn job(xml: &str) -> Job {
        match server(xml).body {
            ServerBody::Request(r) => {
                assert_eq!(r.correlator, CORR);
                r.job
            }
            other => panic!("not a request: {other:?}"),
        }
    }

    fn agent(xml: &str) -> AgentMessage {
        parse_agent_message(xml.as_bytes()).unwrap()
    }

    fn server_err(xml: &[u8]) -> PnpError {
        parse_server_message(xml).unwrap_err()
    }

    // --- Examples of docs/pnp-protocol.md -------------------------------

    const DOC_WORK_REQUEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <info xmlns="urn:cisco:pnp:work-info" correlator="CiscoPnP-1.0-1465-25A1212C">
    <deviceId>
      <udi>PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB</udi>
      <hostname>Switch</hostname>
      <authRequired>false</authRequired>
      <viaProxy>true</viaProxy>
      <securityAdvise>Password in clear text in unsecured transport</securityAdvise>
    </deviceId>
  </info>
</pnp>"#;

    const DOC_PREFIXED: &str = r#"<ns0:pnp xmlns:ns0="urn:cisco:pnp" xmlns:ns1="urn:cisco:pnp:device-info" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <ns1:request correlator="CiscoPnP-1.0-1465-25A1212C"><deviceInfo type="all"/></ns1:request>
</ns0:pnp>"#;

    const DOC_DEVICE_INFO: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:device-info" correlator="CiscoPnP-1.0-1465-25A1212C"><deviceInfo type="all"/></request>
</pnp>"#;

    const DOC_DEVICE_INFO_RESPONSE: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <response xmlns="urn:cisco:pnp:device-info" correlator="CiscoPnP-1.0-1465-25A1212C" success="1">
    <udi><primary-chassis>PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB</primary-chassis></udi>
    <imageInfo><versionString>15.2(7)E8</versionString>
      <imageFile>flash:c2960x-universalk9-mz.152-7.E8.bin</imageFile><imageHash/>
      <returnToRomReason>power-on</returnToRomReason><bootVariable/><bootLdrVariable/>
      <configVariable/><configReg>0xF</configReg><configRegNext/></imageInfo>
    <hardwareInfo><hostname>Switch</hostname><vendor>Cisco</vendor>
      <platformName>WS-C2960X-48TS-L</platformName><processorType/><hwRevision>1.0</hwRevision>
      <mainMemSize>524288000</mainMemSize><ioMemSize>0</ioMemSize><boardId>FOC1234X0AB</boardId>
      <boardReworkId/><processorRev/><midplaneVersion/><location/></hardwareInfo>
    <fileSystemList><fileSystem name="flash" type="disk" writable="true" readable="true"
      size="122185728" freespace="80000000"/></fileSystemList>
  </response>
</pnp>"#;

    const DOC_CONFIG_STARTUP: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:config-upgrade" correlator="CiscoPnP-1.0-1465-25A1212C">
    <config details="all">
      <copy>
        <source><location>http://198.51.100.10/configs/FOC1234X0AB.cfg</location>
          <checksum>9e107d9d372bb6826bd81d3542a419d6</checksum></source>
        <applyTo>startup</applyTo>
      </copy>
    </config>
    <reload><reason>pnp config upgrade</reason><delayIn>0</delayIn></reload>
  </request>
</pnp>"#;

    const DOC_CONFIG_RUNNING: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:config-upgrade" correlator="CiscoPnP-1.0-1465-25A1212C">
    <config details="all"><copy>
      <source><location>http://198.51.100.10/configs/FOC1234X0AB.cfg</location></source>
      <applyTo>running</applyTo>
    </copy></config>
    <noReload/>
  </request>
</pnp>"#;

    const DOC_IMAGE: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:image-install" correlator="CiscoPnP-1.0-1465-25A1212C">
    <image><copy>
      <source><location>http://198.51.100.10/images/c2960x-universalk9-tar.152-7.E8.tar</location>
        <checksum>0cc175b9c0f1b6a831c399e269772661</checksum></source>
      <destination><location>flash:c2960x-universalk9-tar.152-7.E8.tar</location></destination>
    </copy></image>
    <reload><reason>pnp image installation</reason><delayIn>0</delayIn>
      <user>pnp-install-image</user><saveConfig>true</saveConfig></reload>
  </request>
</pnp>"#;

    const DOC_CAPABILITY: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:capability" correlator="CiscoPnP-1.0-1465-25A1212C"/>
</pnp>"#;

    const DOC_BACKOFF: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:backoff" correlator="CiscoPnP-1.0-1465-25A1212C">
    <backoff>
      <reason>nothing to do</reason>
      <callbackAfter><hours>0</hours><minutes>5</minutes><seconds>0</seconds></callbackAfter>
    </backoff>
  </request>
</pnp>"#;

    const DOC_BYE: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <info xmlns="urn:cisco:pnp:work-info" correlator="CiscoPnP-1.0-1465-25A1212C"><workInfo><bye/></workInfo></info>
</pnp>"#;

    const DOC_ERROR_RESPONSE: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <response xmlns="urn:cisco:pnp:config-upgrade" correlator="CiscoPnP-1.0-1465-25A1212C" success="0">
    <errorInfo><errorSeverity>ERROR</errorSeverity><errorCode>PnP Service Error 1803</errorCode>
      <errorMessage>Source file not found</errorMessage></errorInfo>
  </response>
</pnp>"#;

    const DOC_FAULT: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <response xmlns="urn:cisco:pnp:fault">
    <fault><faultcode>XSVC:Client</faultcode>
      <faultstring>An unknown XML tag has been received</faultstring>
      <detail><xsvc-err:error xmlns:xsvc-err="urn:cisco:pnp:error">
        <xsvc-err:details>struct</xsvc-err:details></xsvc-err:error></detail>
    </fault>
  </response>
</pnp>"#;

    /// Every example above, for the fuzz corpus check below.
    const DOC_EXAMPLES: [&str; 13] = [
        DOC_WORK_REQUEST,
        DOC_PREFIXED,
        DOC_DEVICE_INFO,
        DOC_DEVICE_INFO_RESPONSE,
        DOC_CONFIG_STARTUP,
        DOC_CONFIG_RUNNING,
        DOC_IMAGE,
        DOC_CAPABILITY,
        DOC_BACKOFF,
        DOC_BYE,
        DOC_ERROR_RESPONSE,
        DOC_FAULT,
        DOC_CONFIG_STARTUP,
    ];

    #[test]
    fn doc_device_info_request() {
        let msg = server(DOC_DEVICE_INFO);
        assert_eq!(msg.envelope.udi, Some(udi()));
        assert_eq!(msg.envelope.sid, None);
        assert_eq!(msg.envelope.credentials, None);
        assert_eq!(msg.correlator(), Some(CORR));
        assert_eq!(job(DOC_DEVICE_INFO), Job::DeviceInfo(DeviceInfoType::All));
    }

    #[test]
    fn doc_prefixed_openpnpy_form() {
        let msg = server(DOC_PREFIXED);
        assert_eq!(msg.envelope.udi, Some(udi()));
        assert_eq!(job(DOC_PREFIXED), Job::DeviceInfo(DeviceInfoType::All));
    }

    #[test]
    fn prefix_declared_on_request_itself_and_other_prefixes() {
        let xml = r#"<p:pnp xmlns:p="urn:cisco:pnp"><x:request xmlns:x="urn:cisco:pnp:device-info" correlator="CiscoPnP-1.0-1465-25A1212C"><y:deviceInfo xmlns:y="urn:other" y:type="image"/></x:request></p:pnp>"#;
        assert_eq!(job(xml), Job::DeviceInfo(DeviceInfoType::Image));
        let empty = r#"<pnp><q:request xmlns:q="urn:cisco:pnp:capability" correlator="CiscoPnP-1.0-1465-25A1212C"/></pnp>"#;
        assert_eq!(job(empty), Job::Capability);
    }

    #[test]
    fn device_info_types() {
        for (name, kind) in [
            ("image", DeviceInfoType::Image),
            ("hardware", DeviceInfoType::Hardware),
            ("filesystem", DeviceInfoType::Filesystem),
            ("udi", DeviceInfoType::Udi),
            ("profile", DeviceInfoType::Profile),
            ("ALL", DeviceInfoType::All),
            ("license", DeviceInfoType::Other("license".into())),
        ] {
            let xml = DOC_DEVICE_INFO.replace("type=\"all\"", &format!("type=\"{name}\""));
            assert_eq!(job(&xml), Job::DeviceInfo(kind));
        }
        let bare = DOC_DEVICE_INFO.replace("<deviceInfo type=\"all\"/>", "");
        assert_eq!(job(&bare), Job::DeviceInfo(DeviceInfoType::All));
    }

    #[test]
    fn doc_config_upgrade_startup() {
        let expected = ConfigUpgrade {
            details: Some("all".into()),
            source: Source {
                location: "http://198.51.100.10/configs/FOC1234X0AB.cfg".into(),
                checksum: Some("9e107d9d372bb6826bd81d3542a419d6".into()),
            },
            apply_to: ApplyTo::Startup,
            abort_on_syntax_fault: false,
            reload: ReloadPolicy::Reload(Reload {
                reason: Some("pnp config upgrade".into()),
                delay_in: Some(0),
                user: None,
                save_config: None,
            }),
        };
        assert_eq!(job(DOC_CONFIG_STARTUP), Job::ConfigUpgrade(expected));
    }

    #[test]
    fn doc_config_upgrade_running() {
        let Job::ConfigUpgrade(c) = job(DOC_CONFIG_RUNNING) else {
            panic!("not config-upgrade")
        };
        assert_eq!(c.apply_to, ApplyTo::Running);
        assert_eq!(c.reload, ReloadPolicy::NoReload);
        assert_eq!(c.source.checksum, None);
    }

    #[test]
    fn config_upgrade_variants() {
        let no_apply = DOC_CONFIG_STARTUP.replace("<applyTo>startup</applyTo>", "");
        let Job::ConfigUpgrade(c) = job(&no_apply) else {
            panic!()
        };
        assert_eq!(c.apply_to, ApplyTo::Startup);

        let ap = DOC_CONFIG_STARTUP.replace("<applyTo>startup</applyTo>", "<applyTo>AP</applyTo>");
        let Job::ConfigUpgrade(c) = job(&ap) else {
            panic!()
        };
        assert_eq!(c.apply_to, ApplyTo::Other("AP".into()));

        let under_copy =
            DOC_CONFIG_STARTUP.replace("</applyTo>", "</applyTo><abortOnSyntaxFault/>");
        let Job::ConfigUpgrade(c) = job(&under_copy) else {
            panic!()
        };
        assert!(c.abort_on_syntax_fault);

        let under_request = DOC_CONFIG_STARTUP.replace("<reload>", "<abortOnSyntaxFault/><reload>");
        let Job::ConfigUpgrade(c) = job(&under_request) else {
            panic!()
        };
        assert!(c.abort_on_syntax_fault);

        let off = DOC_CONFIG_STARTUP.replace(
            "<reload>",
            "<abortOnSyntaxFault>false</abortOnSyntaxFault><reload>",
        );
        let Job::ConfigUpgrade(c) = job(&off) else {
            panic!()
        };
        assert!(!c.abort_on_syntax_fault);

        for (text, value) in [("1", true), ("0", false), ("true", true), ("FALSE", false)] {
            let xml = DOC_CONFIG_STARTUP.replace(
                "<delayIn>0</delayIn>",
                &format!("<delayIn>0</delayIn><user>pnp</user><saveConfig>{text}</saveConfig>"),
            );
            let Job::ConfigUpgrade(c) = job(&xml) else {
                panic!()
            };
            let ReloadPolicy::Reload(r) = c.reload else {
                panic!()
            };
            assert_eq!(r.save_config, Some(value));
            assert_eq!(r.user.as_deref(), Some("pnp"));
        }

        let no_reload = DOC_CONFIG_STARTUP.replace(
            "<reload><reason>pnp config upgrade</reason><delayIn>0</delayIn></reload>",
            "",
        );
        let Job::ConfigUpgrade(c) = job(&no_reload) else {
            panic!()
        };
        assert_eq!(c.reload, ReloadPolicy::Unspecified);
        assert_eq!(c.details.as_deref(), Some("all"));
    }

    #[test]
    fn config_upgrade_errors() {
        let both = DOC_CONFIG_STARTUP.replace("<reload>", "<noReload/><reload>");
        assert!(matches!(
            server_err(both.as_bytes()),
            PnpError::Conflicting {
                first: "reload",
                second: "noReload"
            }
        ));
        let bad_save =
            DOC_CONFIG_STARTUP.replace("<delayIn>0</delayIn>", "<saveConfig>yes</saveConfig>");
        let err = server_err(bad_save.as_bytes());
        assert!(matches!(&err, PnpError::BadBool { field: "saveConfig", value } if value == "yes"));
        assert_eq!(
            err.to_string(),
            "saveConfig is \"yes\", not 1, 0, true or false"
        );
        let bad_delay = DOC_CONFIG_STARTUP.replace("<delayIn>0</delayIn>", "<delayIn>-1</delayIn>");
        assert!(matches!(
            server_err(bad_delay.as_bytes()),
            PnpError::BadNumber {
                field: "delayIn",
                ..
            }
        ));
        let no_location = DOC_CONFIG_STARTUP.replace(
            "<location>http://198.51.100.10/configs/FOC1234X0AB.cfg</location>",
            "",
        );
        assert!(matches!(
            server_err(no_location.as_bytes()),
            PnpError::MissingElement {
                parent: "source",
                element: "location"
            }
        ));
        let empty_location = DOC_CONFIG_STARTUP.replace(
            "<location>http://198.51.100.10/configs/FOC1234X0AB.cfg</location>",
            "<location> </location>",
        );
        assert!(matches!(
            server_err(empty_location.as_bytes()),
            PnpError::EmptyElement {
                element: "location"
            }
        ));
        let no_source = DOC_CONFIG_RUNNING.replace(
            "<source><location>http://198.51.100.10/configs/FOC1234X0AB.cfg</location></source>",
            "",
        );
        assert!(matches!(
            server_err(no_source.as_bytes()),
            PnpError::MissingElement {
                element: "source",
                ..
            }
        ));
    }

    #[test]
    fn doc_image_install() {
        let expected = ImageInstall {
            source: Source {
                location: "http://198.51.100.10/images/c2960x-universalk9-tar.152-7.E8.tar".into(),
                checksum: Some("0cc175b9c0f1b6a831c399e269772661".into()),
            },
            destination: Some("flash:c2960x-universalk9-tar.152-7.E8.tar".into()),
            reload: ReloadPolicy::Reload(Reload {
                reason: Some("pnp image installation".into()),
                delay_in: Some(0),
                user: Some("pnp-install-image".into()),
                save_config: Some(true),
            }),
        };
        assert_eq!(job(DOC_IMAGE), Job::ImageInstall(expected));
    }

    #[test]
    fn image_install_without_destination_or_reload() {
        let xml = DOC_IMAGE
            .replace(
                "<destination><location>flash:c2960x-universalk9-tar.152-7.E8.tar</location></destination>",
                "",
            )
            .replace(
                "<reload><reason>pnp image installation</reason><delayIn>0</delayIn>\n      <user>pnp-install-image</user><saveConfig>true</saveConfig></reload>",
                "",
            );
        let Job::ImageInstall(i) = job(&xml) else {
            panic!()
        };
        assert_eq!(i.destination, None);
        assert_eq!(i.reload, ReloadPolicy::Unspecified);
        assert!(i.source.location.ends_with(".tar"));
    }

    #[test]
    fn doc_capability() {
        assert_eq!(job(DOC_CAPABILITY), Job::Capability);
        let alias = DOC_CAPABILITY.replace("pnp:capability", "pnp:capabilities");
        assert_eq!(job(&alias), Job::Capability);
    }

    #[test]
    fn topology_request() {
        let xml = DOC_CAPABILITY.replace("pnp:capability", "pnp:topology");
        assert_eq!(job(&xml), Job::Topology);
    }

    #[test]
    fn doc_backoff() {
        assert_eq!(
            job(DOC_BACKOFF),
            Job::Backoff(Backoff {
                reason: Some("nothing to do".into()),
                action: BackoffAction::CallbackAfter(Duration::from_secs(300)),
            })
        );
    }

    fn backoff_action(inner: &str) -> Result<BackoffAction, PnpError> {
        let xml = format!(
            r#"<pnp xmlns="urn:cisco:pnp" version="1.0"><request xmlns="urn:cisco:pnp:backoff" correlator="{CORR}"><backoff>{inner}</backoff></request></pnp>"#
        );
        match parse_server_message(xml.as_bytes())?.body {
            ServerBody::Request(Request {
                job: Job::Backoff(b),
                ..
            }) => Ok(b.action),
            other => panic!("not a backoff: {other:?}"),
        }
    }

    fn action(inner: &str) -> Option<BackoffAction> {
        backoff_action(inner).ok()
    }

    #[test]
    fn backoff_spellings_and_defaults() {
        use BackoffAction::*;
        let secs = |s| Some(CallbackAfter(Duration::from_secs(s)));
        assert_eq!(
            action("<callBackAfter><minutes>2</minutes></callBackAfter>"),
            secs(120)
        );
        assert_eq!(
            action("<callbackAfter><hours>1</hours><seconds>7</seconds></callbackAfter>"),
            secs(3607)
        );
        assert_eq!(action("<callbackAfter/>"), secs(0));
        assert_eq!(action("<callbackAfter><hours/></callbackAfter>"), secs(0));
        assert_eq!(
            action(
                "<callbackAfter><hours>47</hours><minutes>59</minutes><seconds>59</seconds></callbackAfter>"
            ),
            Some(CallbackAfter(MAX_CALLBACK))
        );
        assert_eq!(
            action("<defaultMinutes>30</defaultMinutes>"),
            Some(DefaultMinutes(30))
        );
        assert_eq!(action("<terminate/>"), Some(Terminate));
    }

    #[test]
    fn backoff_clamping() {
        use BackoffAction::*;
        assert_eq!(
            action("<callbackAfter><minutes>90</minutes></callbackAfter>"),
            Some(CallbackAfter(Duration::from_secs(5400)))
        );
        assert_eq!(
            action("<callbackAfter><hours>48</hours></callbackAfter>"),
            Some(CallbackAfter(MAX_CALLBACK))
        );
        assert_eq!(
            action("<callbackAfter><hours>18446744073709551615</hours></callbackAfter>"),
            Some(CallbackAfter(MAX_CALLBACK))
        );
        assert_eq!(
            action("<defaultMinutes>0</defaultMinutes>"),
            Some(DefaultMinutes(1))
        );
        assert_eq!(
            action("<defaultMinutes>9999</defaultMinutes>"),
            Some(DefaultMinutes(2880))
        );
        assert_eq!(
            action("<defaultMinutes>99999999999999</defaultMinutes>"),
            Some(DefaultMinutes(2880))
        );
    }

    #[test]
    fn backoff_errors() {
        assert!(matches!(
            backoff_action("<callbackAfter><minutes>-5</minutes></callbackAfter>"),
            Err(PnpError::BadNumber {
                field: "minutes",
                ..
            })
        ));
        assert!(matches!(
            backoff_action("<callbackAfter><hours>one</hours></callbackAfter>"),
            Err(PnpError::BadNumber { field: "hours", .. })
        ));
        assert!(matches!(
            backoff_action("<callbackAfter><hours>99999999999999999999999</hours></callbackAfter>"),
            Err(PnpError::BadNumber { field: "hours", .. })
        ));
        assert!(matches!(
            backoff_action("<defaultMinutes/>"),
            Err(PnpError::EmptyElement {
                element: "defaultMinutes"
            })
        ));
        assert!(matches!(
            backoff_action("<terminate/><callbackAfter/>"),
            Err(PnpError::Conflicting {
                first: "callbackAfter",
                second: "terminate"
            })
        ));
        assert!(matches!(
            backoff_action("<reason>x</reason>"),
            Err(PnpError::MissingElement {
                parent: "backoff",
                ..
            })
        ));
    }

    #[test]
    fn doc_bye() {
        let msg = server(DOC_BYE);
        assert_eq!(
            msg.body,
            ServerBody::Bye {
                correlator: Some(CORR.into())
            }
        );
        let bare = r#"<pnp xmlns="urn:cisco:pnp"><info xmlns="urn:cisco:pnp:work-info"><workInfo><bye/></workInfo></info></pnp>"#;
        assert_eq!(server(bare).body, ServerBody::Bye { correlator: None });
        let no_bye = DOC_BYE.replace("<bye/>", "");
        assert!(matches!(
            server_err(no_bye.as_bytes()),
            PnpError::MissingElement {
                parent: "info",
                element: "bye"
            }
        ));
    }

    #[test]
    fn unsupported_services() {
        for service in [
            "cli-exec",
            "cli-config",
            "file-transfer",
            "licensing",
            "reload",
            "certificate-install",
        ] {
            let xml = format!(
                r#"<pnp xmlns="urn:cisco:pnp"><request xmlns="urn:cisco:pnp:{service}" correlator="c1"><execCLI maxWait="PT30S" xsd="false"><cmd>show version</cmd></execCLI></request></pnp>"#
            );
            let ServerBody::Request(r) = server(&xml).body else {
                panic!()
            };
            assert_eq!(r.correlator, "c1");
            assert_eq!(
                r.job,
                Job::Unsupported {
                    service: service.into()
                }
            );
            assert_eq!(r.job.service(), Service::Other(service.into()));
        }
    }

    #[test]
    fn doc_work_request() {
        let msg = agent(DOC_WORK_REQUEST);
        assert_eq!(msg.envelope.udi, Some(udi()));
        assert_eq!(
            msg.body,
            AgentBody::WorkRequest(WorkRequest {
                correlator: CORR.into(),
                udi: Some(udi()),
                hostname: Some("Switch".into()),
                auth_required: false,
                via_proxy: true,
            })
        );
    }

    #[test]
    fn work_request_variants_ignored_elements() {
        let xml = DOC_WORK_REQUEST
            .replace("<hostname>", "<macAddress>0011.2233.4455</macAddress><hostname>")
            .replace(
                "</deviceId>",
                "</deviceId><reason><reload><message>factory-reset</message><code>PnP Service Info 2408</code><startupConfigPresent>false</startupConfigPresent></reload></reason><SUDI>x</SUDI>",
            );
        let AgentBody::WorkRequest(w) = agent(&xml).body else {
            panic!()
        };
        assert_eq!(w.hostname.as_deref(), Some("Switch"));
        assert!(w.via_proxy);
    }

    #[test]
    fn doc_device_info_response() {
        let msg = agent(DOC_DEVICE_INFO_RESPONSE);
        let AgentBody::Response(r) = msg.body else {
            panic!()
        };
        assert_eq!(r.service, Service::DeviceInfo);
        assert_eq!(r.correlator, CORR);
        assert!(r.success);
        assert_eq!(r.error, None);
        assert_eq!(
            r.body,
            ResponseBody::DeviceInfo(DeviceInfoReply {
                udi: Some(udi()),
                image: Some(ImageInfo {
                    version_string: Some("15.2(7)E8".into()),
                    image_file: Some("flash:c2960x-universalk9-mz.152-7.E8.bin".into()),
                }),
                hardware: Some(HardwareInfo {
                    hostname: Some("Switch".into()),
                    platform_name: Some("WS-C2960X-48TS-L".into()),
                    board_id: Some("FOC1234X0AB".into()),
                }),
            })
        );
    }

    #[test]
    fn doc_error_response() {
        let AgentBody::Response(r) = agent(DOC_ERROR_RESPONSE).body else {
            panic!()
        };
        assert_eq!(r.service, Service::ConfigUpgrade);
        assert!(!r.success);
        assert_eq!(r.body, ResponseBody::Empty);
        assert_eq!(
            r.error,
            Some(ErrorInfo {
                severity: "ERROR".into(),
                code: "PnP Service Error 1803".into(),
                message: "Source file not found".into(),
            })
        );
    }

    #[test]
    fn doc_fault_any_prefix_case() {
        let expected = AgentBody::Fault(Fault {
            code: "XSVC:Client".into(),
            string: "An unknown XML tag has been received".into(),
            details: "struct".into(),
        });
        assert_eq!(agent(DOC_FAULT).body, expected);
        let upper = DOC_FAULT.replace("xsvc-err", "XSVC-ERR");
        assert_eq!(agent(&upper).body, expected);
    }

    #[test]
    fn success_spellings() {
        let base = r#"<pnp xmlns="urn:cisco:pnp"><response xmlns="urn:cisco:pnp:backoff" correlator="c" success="S"/></pnp>"#;
        for (text, value) in [
            ("1", true),
            ("0", false),
            ("true", true),
            ("false", false),
            ("TRUE", true),
            ("False", false),
            (" 1 ", true),
        ] {
            let AgentBody::Response(r) = agent(&base.replace('S', text)).body else {
                panic!()
            };
            assert_eq!(r.success, value, "{text}");
        }
        let bad = base.replace('S', "yes");
        assert!(matches!(
            parse_agent_message(bad.as_bytes()),
            Err(PnpError::BadBool {
                field: "success",
                ..
            })
        ));
        let missing = base.replace(r#" success="S""#, "");
        assert!(matches!(
            parse_agent_message(missing.as_bytes()),
            Err(PnpError::MissingAttribute {
                element: "response",
                attribute: "success"
            })
        ));
    }

    #[test]
    fn bom_no_declaration_leading_whitespace_crlf() {
        let body = format!("\u{feff}\r\n  \t{}", DOC_BACKOFF.replace('\n', "\r\n"));
        let Job::Backoff(b) = job(&body) else {
            panic!()
        };
        assert_eq!(
            b.action,
            BackoffAction::CallbackAfter(Duration::from_secs(300))
        );
        let with_decl = format!("\u{feff}\n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{DOC_BYE}");
        assert!(matches!(server(&with_decl).body, ServerBody::Bye { .. }));
        let no_ns = r#"<pnp><request xmlns="urn:cisco:pnp:capability" correlator="CiscoPnP-1.0-1465-25A1212C"/></pnp>"#;
        assert_eq!(job(no_ns), Job::Capability);
    }

    #[test]
    fn credentials_and_sid() {
        let xml = DOC_BYE.replace(
            " version=",
            r#" sid="S-42" usr="admin" pwd="s3cr&amp;t" version="#,
        );
        let env = server(&xml).envelope;
        assert_eq!(env.sid.as_deref(), Some("S-42"));
        let creds = env.credentials.clone().unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("admin", "s3cr&t")
        );
        let debug = format!("{env:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
        assert!(debug.contains("admin") && debug.contains("redacted"));

        let long = DOC_BYE.replace(" version=", r#" username="u" password="p" version="#);
        let creds = server(&long).envelope.credentials.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("u", "p")
        );

        let only_user = DOC_BYE.replace(" version=", r#" usr="u" version="#);
        let creds = server(&only_user).envelope.credentials.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("u", "")
        );

        let empty_sid = DOC_BYE.replace(" version=", r#" sid="" version="#);
        assert_eq!(server(&empty_sid).envelope.sid, None);
    }

    #[test]
    fn udi_with_slash_and_empty_vid() {
        let xml = DOC_BYE.replace(UDI, "PID:CISCO2921/K9,VID:,SN:FOC1234");
        let u = server(&xml).envelope.udi.unwrap();
        assert_eq!((u.pid(), u.vid(), u.sn()), ("CISCO2921/K9", "", "FOC1234"));
        let bad = DOC_BYE.replace(UDI, "WS-C2960X");
        assert!(matches!(
            server_err(bad.as_bytes()),
            PnpError::BadUdi {
                field: "pnp udi attribute",
                ..
            }
        ));
    }

    #[test]
    fn references_and_cdata_in_text() {
        let xml = DOC_CONFIG_RUNNING.replace(
            "http://198.51.100.10/configs/FOC1234X0AB.cfg",
            "http://h/c?a=1&amp;b=&#x32;&#51;<![CDATA[&x<]]>",
        );
        let Job::ConfigUpgrade(c) = job(&xml) else {
            panic!()
        };
        assert_eq!(c.source.location, "http://h/c?a=1&b=23&x<");
    }

    #[test]
    fn forbidden_characters_become_replacement() {
        let xml = DOC_BYE.replace(CORR, "a&#1;b\u{1}c");
        assert_eq!(server(&xml).correlator(), Some("a\u{fffd}b\u{fffd}c"));
        let text = DOC_CONFIG_RUNNING.replace(".cfg</location>", ".cfg&#x1F;</location>");
        let Job::ConfigUpgrade(c) = job(&text) else {
            panic!()
        };
        assert!(c.source.location.ends_with(".cfg\u{fffd}"));
    }

    #[test]
    fn service_name_must_be_a_token() {
        let xml = DOC_CAPABILITY.replace("pnp:capability", "pnp:a&amp;b");
        assert!(matches!(
            server_err(xml.as_bytes()),
            PnpError::NoService {
                element: "request",
                ..
            }
        ));
        let upper = DOC_CAPABILITY.replace("urn:cisco:pnp:capability", "URN:Cisco:PnP:CLI_exec.v2");
        assert_eq!(
            job(&upper),
            Job::Unsupported {
                service: "CLI_exec.v2".into()
            }
        );
    }

    #[test]
    fn unknown_elements_and_attributes_ignored() {
        let xml = DOC_BACKOFF
            .replace("<backoff>", r#"<backoff foo="bar"><future><x/></future>"#)
            .replace("<request ", r#"<extra/><request extra="1" "#);
        // <extra/> comes before <request>: the first child decides the kind.
        assert!(matches!(
            server_err(xml.as_bytes()),
            PnpError::UnexpectedMessage { .. }
        ));
        let xml = DOC_BACKOFF
            .replace(
                "<backoff>",
                r#"<backoff foo="bar"><future><x/></future><!-- note --><?pi x?>"#,
            )
            .replace("<request ", r#"<request extra="1" "#);
        assert!(matches!(job(&xml), Job::Backoff(_)));
    }

    #[test]
    fn structural_errors() {
        assert!(matches!(server_err(b""), PnpError::Empty));
        assert!(matches!(server_err(b"  \n "), PnpError::Empty));
        assert!(matches!(server_err(b"<!-- only -->"), PnpError::Empty));
        assert!(
            matches!(server_err(b"<html><body/></html>"), PnpError::NotPnp { found } if found == "html")
        );
        assert!(matches!(
            server_err(b"<pnp/>"),
            PnpError::MissingElement { parent: "pnp", .. }
        ));
        assert!(matches!(
            server_err(b"<pnp/><pnp/>"),
            PnpError::MultipleRoots
        ));
        assert!(
            matches!(server_err(b"<pnp><request>"), PnpError::Truncated { element } if element == "request")
        );
        assert!(matches!(
            server_err(b"<pnp><a></b></pnp>"),
            PnpError::Xml { .. }
        ));
        assert!(matches!(
            server_err(b"<pnp><response xmlns='urn:cisco:pnp:backoff' correlator='c' success='1'/></pnp>"),
            PnpError::UnexpectedMessage { found, .. } if found == "response"
        ));
        assert!(matches!(
            server_err(b"<pnp><request correlator='c'/></pnp>"),
            PnpError::NoService {
                element: "request",
                namespace: None
            }
        ));
        assert!(matches!(
            server_err(b"<pnp><request xmlns='urn:cisco:pnp:' correlator='c'/></pnp>"),
            PnpError::NoService { .. }
        ));
        assert!(matches!(
            server_err(b"<pnp><request xmlns='urn:cisco:pnp:capability'/></pnp>"),
            PnpError::MissingAttribute {
                element: "request",
                attribute: "correlator"
            }
        ));
        assert!(matches!(
            parse_agent_message(
                b"<pnp><info xmlns='urn:cisco:pnp:work-info' correlator='c'/></pnp>"
            ),
            Err(PnpError::MissingElement {
                parent: "info",
                element: "deviceId"
            })
        ));
        assert!(matches!(
            parse_agent_message(DOC_BACKOFF.as_bytes()),
            Err(PnpError::UnexpectedMessage { .. })
        ));
    }

    // --- Hostile input ------------------------------------------------------

    #[test]
    fn billion_laughs_refused() {
        let xml = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol9 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<pnp xmlns="urn:cisco:pnp"><info xmlns="urn:cisco:pnp:work-info" correlator="&lol9;"><workInfo><bye/></workInfo></info></pnp>"#;
        let err = server_err(xml.as_bytes());
        assert!(
            matches!(&err, PnpError::DtdRefused { found } if found == "DOCTYPE"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("DTDs and entity declarations are refused")
        );
    }

    #[test]
    fn external_entity_refused() {
        let xml = r#"<?xml version="1.0"?><!DOCTYPE pnp [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><pnp><info correlator="&xxe;"><bye/></info></pnp>"#;
        assert!(matches!(
            server_err(xml.as_bytes()),
            PnpError::DtdRefused { .. }
        ));
        let lower = xml.replace("DOCTYPE", "doctype");
        assert!(matches!(
            server_err(lower.as_bytes()),
            PnpError::DtdRefused { .. }
        ));
        let bare_entity = r#"<pnp><!ENTITY x "y"></pnp>"#;
        assert!(
            matches!(server_err(bare_entity.as_bytes()), PnpError::DtdRefused { found } if found == "ENTITY")
        );
        // Without a DTD the reference is simply unknown: never resolved.
        let undeclared = r#"<pnp><info correlator="&xxe;"><bye/></info></pnp>"#;
        assert!(
            matches!(server_err(undeclared.as_bytes()), PnpError::UnknownEntity { name } if name == "xxe")
        );
        let in_text = r#"<pnp><info correlator="c"><bye>&xxe;</bye></info></pnp>"#;
        assert!(
            matches!(server_err(in_text.as_bytes()), PnpError::UnknownEntity { name } if name == "xxe")
        );
    }

    #[test]
    fn deep_nesting_refused() {
        let mut xml = String::from("<pnp>");
        for _ in 0..10_000 {
            xml.push_str("<a>");
        }
        for _ in 0..10_000 {
            xml.push_str("</a>");
        }
        xml.push_str("</pnp>");
        assert!(matches!(
            server_err(xml.as_bytes()),
            PnpError::TooDeep { cap: DEPTH_CAP }
        ));
        let empty_leaf = format!(
            "{}<x/>{}",
            "<a>".repeat(DEPTH_CAP),
            "</a>".repeat(DEPTH_CAP)
        );
        assert!(matches!(
            server_err(empty_leaf.as_bytes()),
            PnpError::TooDeep { .. }
        ));
        let just_fits = format!("{}{}", "<a>".repeat(DEPTH_CAP), "</a>".repeat(DEPTH_CAP));
        assert!(matches!(
            server_err(just_fits.as_bytes()),
            PnpError::NotPnp { .. }
        ));
    }

    #[test]
    fn oversized_body_refused() {
        let mut xml = DOC_BYE.to_owned().into_bytes();
        xml.resize(2 * 1024 * 1024, b' ');
        let err = server_err(&xml);
        assert!(
            matches!(err, PnpError::BodyTooLarge { len, cap: BODY_CAP } if len == 2 * 1024 * 1024)
        );
        assert!(matches!(
            parse_agent_message(&xml),
            Err(PnpError::BodyTooLarge { .. })
        ));
        let mut at_cap = DOC_BYE.to_owned().into_bytes();
        at_cap.resize(BODY_CAP, b' ');
        assert!(parse_server_message(&at_cap).is_ok());
    }

    #[test]
    fn huge_attribute_and_text_refused() {
        let big = "A".repeat(VALUE_CAP + 1);
        let attr = DOC_BYE.replace(CORR, &big);
        assert!(matches!(
            server_err(attr.as_bytes()),
            PnpError::ValueTooLong { element, cap: VALUE_CAP } if element == "info"
        ));
        let text = DOC_CONFIG_RUNNING.replace("http://198.51.100.10/configs/FOC1234X0AB.cfg", &big);
        assert!(matches!(
            server_err(text.as_bytes()),
            PnpError::ValueTooLong { element, .. } if element == "location"
        ));
        let pieces = DOC_CONFIG_RUNNING.replace(
            "http://198.51.100.10/configs/FOC1234X0AB.cfg",
            &"&amp;".repeat(VALUE_CAP + 1),
        );
        assert!(matches!(
            server_err(pieces.as_bytes()),
            PnpError::ValueTooLong { .. }
        ));
    }

    #[test]
    fn too_many_elements_and_attributes_refused() {
        let xml = format!("<pnp>{}</pnp>", "<a/>".repeat(ELEMENT_CAP));
        assert!(matches!(
            server_err(xml.as_bytes()),
            PnpError::TooManyElements { cap: ELEMENT_CAP }
        ));
        let attrs: String = (0..=ATTRIBUTE_CAP)
            .map(|i| format!(" a{i}=\"x\""))
            .collect();
        let xml = format!("<pnp{attrs}/>");
        assert!(matches!(
            server_err(xml.as_bytes()),
            PnpError::TooManyAttributes { element, cap: ATTRIBUTE_CAP } if element == "pnp"
        ));
    }

    #[test]
    fn non_utf8_refused() {
        let mut xml = DOC_BYE.as_bytes().to_vec();
        xml.insert(10, 0xff);
        assert!(matches!(server_err(&xml), PnpError::NotUtf8 { offset: 10 }));
        let utf16: Vec<u8> = "<pnp/>".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut bom16 = vec![0xff, 0xfe];
        bom16.extend(utf16);
        assert!(matches!(
            server_err(&bom16),
            PnpError::NotUtf8 { offset: 0 }
        ));
    }

    #[test]
    fn error_messages_are_specific() {
        assert_eq!(
            PnpError::TooDeep { cap: 32 }.to_string(),
            "XML elements nest deeper than 32 levels"
        );
        assert_eq!(
            PnpError::BodyTooLarge { len: 2, cap: 1 }.to_string(),
            "PnP body is 2 bytes, over the 1-byte cap"
        );
        assert_eq!(
            PnpError::NoService {
                element: "request",
                namespace: Some("urn:x".into())
            }
            .to_string(),
            "<request> is in namespace Some(\"urn:x\"), not urn:cisco:pnp:<service>"
        );
    }

    // --- Encoding -------------------------------------------------------------

    fn envelope() -> Envelope {
        Envelope::agent(udi(), None)
    }

    const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB\">";

    #[test]
    fn vendor_strings_byte_exact() {
        assert_eq!(
            PNP_ERROR_UNSUPPORTED_REQUEST,
            "SMI PROXY:Not supported service request"
        );
        assert_eq!(
            XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED,
            "SMI PROXY: Config upgrade apply to Running Config is not supported"
        );
        assert_eq!(
            XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_HARDWARE,
            "SMI PROXY:Client device hardware info not supported"
        );
        assert_eq!(
            XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_FILESYSTEM,
            "SMI PROXY:Client device filesystem info not supported"
        );
        assert_eq!(
            SmiRefusal::UnsupportedRequest.code(),
            "PNP_ERROR_UNSUPPORTED_REQUEST"
        );
        assert_eq!(
            SmiRefusal::ConfigUpgradeRunning.code(),
            "XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED"
        );
        assert_eq!(
            SmiRefusal::DeviceInfoHardware.code(),
            "XSVC_ERROR_DEVICE_INFO_UNSUPPORTED"
        );
        assert_eq!(
            SmiRefusal::DeviceInfoFilesystem.code(),
            "XSVC_ERROR_DEVICE_INFO_UNSUPPORTED"
        );
        assert_eq!(
            SmiRefusal::DeviceInfoFilesystem.message(),
            XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_FILESYSTEM
        );
        assert_eq!(CAPABILITY_SERVICES.len(), 7);
    }

    #[test]
    fn encode_work_request_exact() {
        let request = WorkRequest {
            correlator: CORR.into(),
            udi: Some(udi()),
            hostname: Some("Switch".into()),
            auth_required: false,
            via_proxy: true,
        };
        let expected = format!(
            "{HEAD}<info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"{CORR}\"><deviceId><udi>{UDI}</udi><hostname>Switch</hostname><authRequired>false</authRequired><viaProxy>true</viaProxy></deviceId></info></pnp>"
        );
        assert_eq!(encode_work_request(&envelope(), &request), expected);
        let not_proxy = WorkRequest {
            via_proxy: false,
            ..request
        };
        assert!(
            encode_work_request(&envelope(), &not_proxy).contains("<viaProxy>false</viaProxy>")
        );
    }

    #[test]
    fn encode_with_sid() {
        let env = Envelope::agent(udi(), Some("abc\"1".into()));
        let out = encode_response(&env, &Response::ok(Service::Backoff, CORR));
        assert_eq!(
            out,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{UDI}\" sid=\"abc&quot;1\"><response xmlns=\"urn:cisco:pnp:backoff\" correlator=\"{CORR}\" success=\"1\"/></pnp>"
            )
        );
        assert_eq!(agent(&out).envelope.sid.as_deref(), Some("abc\"1"));
    }

    #[test]
    fn encode_refusals_exact() {
        let out = encode_response(
            &envelope(),
            &Response::refused(
                Service::ConfigUpgrade,
                CORR,
                SmiRefusal::ConfigUpgradeRunning,
            ),
        );
        assert_eq!(
            out,
            format!(
                "{HEAD}<response xmlns=\"urn:cisco:pnp:config-upgrade\" correlator=\"{CORR}\" success=\"0\"><errorInfo><errorSeverity>ERROR</errorSeverity><errorCode>XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED</errorCode><errorMessage>SMI PROXY: Config upgrade apply to Running Config is not supported</errorMessage></errorInfo></response></pnp>"
            )
        );
        let out = encode_response(
            &envelope(),
            &Response::refused(
                Service::Other("cli-exec".into()),
                "c9",
                SmiRefusal::UnsupportedRequest,
            ),
        );
        assert_eq!(
            out,
            format!(
                "{HEAD}<response xmlns=\"urn:cisco:pnp:cli-exec\" correlator=\"c9\" success=\"0\"><errorInfo><errorSeverity>ERROR</errorSeverity><errorCode>PNP_ERROR_UNSUPPORTED_REQUEST</errorCode><errorMessage>SMI PROXY:Not supported service request</errorMessage></errorInfo></response></pnp>"
            )
        );
        for refusal in [
            SmiRefusal::DeviceInfoHardware,
            SmiRefusal::DeviceInfoFilesystem,
        ] {
            let out = encode_response(
                &envelope(),
                &Response::refused(Service::DeviceInfo, CORR, refusal),
            );
            assert!(out.contains(&format!(
                "<errorMessage>{}</errorMessage>",
                refusal.message()
            )));
            let AgentBody::Response(r) = agent(&out).body else {
                panic!()
            };
            assert_eq!(r.error, Some(refusal.error_info()));
            assert!(!r.success);
        }
    }

    #[test]
    fn encode_capability_exact() {
        let response = Response {
            body: ResponseBody::smi_proxy_capabilities(),
            ..Response::ok(Service::Capability, CORR)
        };
        let out = encode_response(&envelope(), &response);
        assert_eq!(
            out,
            format!(
                "{HEAD}<response xmlns=\"urn:cisco:pnp:capability\" correlator=\"{CORR}\" success=\"1\"><serviceList><service>capabilities</service><service>config-upgrade</service><service>device-info</service><service>image-install</service><service>topology</service><service>backoff</service><service>bye</service></serviceList></response></pnp>"
            )
        );
        let AgentBody::Response(back) = agent(&out).body else {
            panic!()
        };
        assert_eq!(back, response);
    }

    #[test]
    fn encode_topology_exact() {
        let response = Response {
            body: ResponseBody::Topology(Topology {
                interface: Some("GigabitEthernet1/0/1".into()),
                vlan: Some(1),
                mac_address: Some("0011.2233.4455".into()),
                ip_address: Some("192.0.2.10".parse().unwrap()),
            }),
            ..Response::ok(Service::Topology, CORR)
        };
        let out = encode_response(&envelope(), &response);
        assert_eq!(
            out,
            format!(
                "{HEAD}<response xmlns=\"urn:cisco:pnp:topology\" correlator=\"{CORR}\" success=\"1\"><topology><interface>GigabitEthernet1/0/1</interface><vlan>1</vlan><macAddress>0011.2233.4455</macAddress><ipAddress>192.0.2.10</ipAddress></topology></response></pnp>"
            )
        );
        let AgentBody::Response(back) = agent(&out).body else {
            panic!()
        };
        assert_eq!(back, response);
        let bad = out.replace("192.0.2.10", "192.0.2.300");
        assert!(matches!(
            parse_agent_message(bad.as_bytes()),
            Err(PnpError::BadAddress {
                field: "ipAddress",
                ..
            })
        ));
    }

    #[test]
    fn encode_device_info_exact() {
        let response = Response {
            body: ResponseBody::DeviceInfo(DeviceInfoReply {
                udi: Some(udi()),
                image: Some(ImageInfo {
                    version_string: Some("15.2(7)E8".into()),
                    image_file: Some("flash:c2960x-universalk9-mz.152-7.E8.bin".into()),
                }),
                hardware: None,
            }),
            ..Response::ok(Service::DeviceInfo, CORR)
        };
        let out = encode_response(&envelope(), &response);
        assert_eq!(
            out,
            format!(
                "{HEAD}<response xmlns=\"urn:cisco:pnp:device-info\" correlator=\"{CORR}\" success=\"1\"><udi><primary-chassis>{UDI}</primary-chassis></udi><imageInfo><versionString>15.2(7)E8</versionString><imageFile>flash:c2960x-universalk9-mz.152-7.E8.bin</imageFile></imageInfo></response></pnp>"
            )
        );
    }

    #[test]
    fn encode_fault_exact() {
        let fault = Fault::client("An unknown XML tag has been received", "struct");
        let out = encode_fault(&envelope(), &fault);
        assert_eq!(
            out,
            format!(
                "{HEAD}<response xmlns=\"urn:cisco:pnp:fault\"><fault><faultcode>XSVC:Client</faultcode><faultstring>An unknown XML tag has been received</faultstring><detail><xsvc-err:error xmlns:xsvc-err=\"urn:cisco:pnp:error\"><xsvc-err:details>struct</xsvc-err:details></xsvc-err:error></detail></fault></response></pnp>"
            )
        );
        assert!(!out.contains("correlator"));
        assert_eq!(agent(&out).body, AgentBody::Fault(fault));
    }

    #[test]
    fn escaping_round_trips() {
        let nasty = "a<b>&c\"d'e\tf\ng\rh";
        let request = WorkRequest {
            correlator: nasty.into(),
            udi: Some(udi()),
            hostname: Some(nasty.into()),
            auth_required: true,
            via_proxy: false,
        };
        let env = Envelope::agent(udi(), Some(nasty.into()));
        let out = encode_work_request(&env, &request);
        assert!(!out.contains("a<b"));
        let back = agent(&out);
        assert_eq!(back.envelope.sid.as_deref(), Some(nasty.trim()));
        let AgentBody::WorkRequest(w) = back.body else {
            panic!()
        };
        assert_eq!(w.correlator, nasty);
        assert_eq!(w.hostname.as_deref(), Some(nasty));
        assert!(w.auth_required);

        let control = WorkRequest {
            hostname: Some("x\u{1}y\u{0}z\u{fffe}".into()),
            ..request
        };
        let out = encode_work_request(&envelope(), &control);
        let AgentBody::WorkRequest(w) = agent(&out).body else {
            panic!()
        };
        assert_eq!(w.hostname.as_deref(), Some("x\u{fffd}y\u{fffd}z\u{fffd}"));
    }

    #[test]
    fn agent_messages_round_trip() {
        let messages = [
            AgentBody::WorkRequest(WorkRequest {
                correlator: correlator(7, 0xdead_beef),
                udi: Some(udi()),
                hostname: None,
                auth_required: false,
                via_proxy: true,
            }),
            AgentBody::Response(Response::ok(Service::ConfigUpgrade, CORR)),
            AgentBody::Response(Response::failed(
                Service::ImageInstall,
                CORR,
                ErrorInfo {
                    severity: "ERROR".into(),
                    code: "PnP Service Error 1829".into(),
                    message: "Image copy was unsuccessful".into(),
                },
            )),
            AgentBody::Response(Response {
                body: ResponseBody::DeviceInfo(DeviceInfoReply {
                    udi: None,
                    image: Some(ImageInfo::default()),
                    hardware: Some(HardwareInfo {
                        hostname: Some("sw1".into()),
                        platform_name: Some("WS-C2960-24TT-L".into()),
                        board_id: Some("FOC1".into()),
                    }),
                }),
                ..Response::ok(Service::DeviceInfo, CORR)
            }),
            AgentBody::Response(Response {
                body: ResponseBody::Topology(Topology {
                    ip_address: Some("2001:db8::1".parse().unwrap()),
                    ..Topology::default()
                }),
                ..Response::ok(Service::Topology, CORR)
            }),
            AgentBody::Fault(Fault::client("bad", "")),
        ];
        for body in messages {
            let message = AgentMessage {
                envelope: Envelope::agent(udi(), Some("sid-1".into())),
                body,
            };
            let out = encode_agent_message(&message);
            assert!(out.starts_with(XML_DECLARATION));
            assert_eq!(
                parse_agent_message(out.as_bytes()).unwrap(),
                message,
                "{out}"
            );
        }
    }

    #[test]
    fn server_messages_round_trip() {
        let jobs = [
            Job::DeviceInfo(DeviceInfoType::Filesystem),
            Job::ConfigUpgrade(ConfigUpgrade {
                details: None,
                source: Source {
                    location: "http://198.51.100.10/c?a=1&b=2".into(),
                    checksum: None,
                },
                apply_to: ApplyTo::Running,
                abort_on_syntax_fault: true,
                reload: ReloadPolicy::NoReload,
            }),
            Job::ImageInstall(ImageInstall {
                source: Source {
                    location: "http://198.51.100.10/images/x.tar".into(),
                    checksum: Some("0cc175b9c0f1b6a831c399e269772661".into()),
                },
                destination: None,
                reload: ReloadPolicy::Reload(Reload {
                    reason: None,
                    delay_in: Some(5),
                    user: None,
                    save_config: Some(false),
                }),
            }),
            Job::Capability,
            Job::Topology,
            Job::Backoff(Backoff {
                reason: None,
                action: BackoffAction::CallbackAfter(Duration::from_secs(3 * 3600 + 4 * 60 + 5)),
            }),
            Job::Backoff(Backoff {
                reason: Some("idle".into()),
                action: BackoffAction::DefaultMinutes(15),
            }),
            Job::Backoff(Backoff {
                reason: None,
                action: BackoffAction::Terminate,
            }),
            Job::Unsupported {
                service: "cli-exec".into(),
            },
        ];
        let envelope = Envelope {
            udi: Some(udi()),
            sid: Some("s".into()),
            credentials: Some(Credentials {
                username: "admin".into(),
                password: "p<w>".into(),
            }),
        };
        let mut bodies: Vec<ServerBody> = jobs
            .into_iter()
            .map(|job| {
                ServerBody::Request(Request {
                    correlator: CORR.into(),
                    job,
                })
            })
            .collect();
        bodies.push(ServerBody::Bye {
            correlator: Some(CORR.into()),
        });
        bodies.push(ServerBody::Bye { correlator: None });
        for body in bodies {
            let message = ServerMessage {
                envelope: envelope.clone(),
                body,
            };
            let out = encode_server_message(&message);
            assert_eq!(
                parse_server_message(out.as_bytes()).unwrap(),
                message,
                "{out}"
            );
        }
    }

    #[test]
    fn encode_server_bye_exact() {
        let out = encode_server_message(&ServerMessage {
            envelope: Envelope::agent(udi(), None),
            body: ServerBody::Bye {
                correlator: Some(CORR.into()),
            },
        });
        assert_eq!(
            out,
            format!(
                "{HEAD}<info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"{CORR}\"><workInfo><bye/></workInfo></info></pnp>"
            )
        );
    }

    #[test]
    fn correlator_format() {
        assert_eq!(correlator(1465, 0x25A1_212C), CORR);
        assert_eq!(correlator(0, 1), "CiscoPnP-1.0-0-00000001");
    }

    #[test]
    fn service_names() {
        for s in [
            Service::Capability,
            Service::ConfigUpgrade,
            Service::DeviceInfo,
            Service::ImageInstall,
            Service::Topology,
            Service::Backoff,
            Service::Other("x-y".into()),
        ] {
            assert_eq!(Service::from_name(s.name()), s);
            assert_eq!(s.namespace(), format!("urn:cisco:pnp:{s}"));
        }
        assert_eq!(Service::from_name("Device-Info"), Service::DeviceInfo);
    }

    #[test]
    fn doc_examples_parse_in_one_direction() {
        for example in DOC_EXAMPLES {
            let server = parse_server_message(example.as_bytes());
            let agent = parse_agent_message(example.as_bytes());
            assert!(server.is_ok() != agent.is_ok(), "{example}");
        }
    }

    #[test]
    fn fuzz_corpus_seeds_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pnp_parse");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.path().extension().is_none_or(|e| e != "xml") {
                continue;
            }
            let body = std::fs::read(entry.path()).unwrap();
            let ok = parse_server_message(&body).is_ok() || parse_agent_message(&body).is_ok();
            let name = entry.file_name().to_string_lossy().into_owned();
            assert_eq!(ok, !name.starts_with("hostile"), "{name}");
        }
    }
}
