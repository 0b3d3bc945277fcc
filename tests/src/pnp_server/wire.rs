//! The PnP test server's own XML, written from `docs/pnp-protocol.md`
//! (envelope §1, namespaces §2, correlator §3, UDI §4, work-request §5,
//! jobs §6, results §7) on quick-xml, and deliberately independent of the
//! proxy's PnP codec: a server that parses with the product's code cannot
//! catch the product's encoding bugs. Pure functions, bytes in, values out.
//!
//! Reading ([`parse_agent_message`]): the body becomes a small element tree
//! (local names, each element's namespace, attributes by local name, text)
//! under caps on size, depth and element count, with no DTD and no entity
//! besides the five predefined ones; then the envelope, the message element
//! and its fields are read from the tree. The envelope must be `<pnp>` in
//! `urn:cisco:pnp` with `version="1.0"`; the service of a `<response>` is
//! the last part of its namespace.
//!
//! Writing ([`encode_request`], [`encode_bye`]): compact XML without a
//! declaration, in the default-namespace form of the document's samples, or
//! in openpnpy's prefixed form and with the alternative spellings seen in
//! the wild ([`WireOptions`]).
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::{NsReader, Writer, XmlVersion};

/// Namespace of the `<pnp>` envelope.
pub const NS_PNP: &str = "urn:cisco:pnp";
/// Prefix of every service namespace (`urn:cisco:pnp:<service>`).
pub const NS_SERVICE_PREFIX: &str = "urn:cisco:pnp:";
/// Largest body the server reads (doc §11: e.g. 1 MiB).
pub const BODY_CAP: usize = 1 << 20;
/// Deepest element nesting accepted.
pub const DEPTH_CAP: usize = 32;
/// Most elements accepted in one body.
pub const ELEMENT_CAP: usize = 4096;

/// A device identity, `PID:<pid>,VID:<vid>,SN:<sn>` (doc §4): each field
/// printable ASCII without space or comma; PID and SN non-empty.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Udi(String);

/// Why a text is not a UDI.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a UDI (PID:<pid>,VID:<vid>,SN:<sn>)")]
pub struct UdiError(String);

impl Udi {
    /// The UDI of these fields, checked as [`Udi::from_str`] does.
    pub fn new(pid: &str, vid: &str, sn: &str) -> Result<Self, UdiError> {
        format!("PID:{pid},VID:{vid},SN:{sn}").parse()
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Udi {
    type Err = UdiError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || UdiError(text.chars().take(200).collect());
        let rest = text.strip_prefix("PID:").ok_or_else(bad)?;
        let (pid, rest) = rest.split_once(",VID:").ok_or_else(bad)?;
        let (vid, sn) = rest.split_once(",SN:").ok_or_else(bad)?;
        let field = |s: &str| s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',');
        if pid.is_empty() || sn.is_empty() || !field(pid) || !field(vid) || !field(sn) {
            return Err(bad());
        }
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Display for Udi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A PnP service, named by the last part of its namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// `device-info`.
    DeviceInfo,
    /// `config-upgrade`.
    ConfigUpgrade,
    /// `image-install`.
    ImageInstall,
    /// `capability`.
    Capability,
    /// `topology`.
    Topology,
    /// `backoff`.
    Backoff,
    /// Any other service, e.g. `cli-exec`.
    Other(String),
}

impl Service {
    /// The service of a name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "device-info" => Self::DeviceInfo,
            "config-upgrade" => Self::ConfigUpgrade,
            "image-install" => Self::ImageInstall,
            "capability" => Self::Capability,
            "topology" => Self::Topology,
            "backoff" => Self::Backoff,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Its name, e.g. `device-info`.
    pub fn name(&self) -> &str {
        match self {
            Self::DeviceInfo => "device-info",
            Self::ConfigUpgrade => "config-upgrade",
            Self::ImageInstall => "image-install",
            Self::Capability => "capability",
            Self::Topology => "topology",
            Self::Backoff => "backoff",
            Self::Other(name) => name,
        }
    }

    /// Its namespace, `urn:cisco:pnp:<name>`.
    pub fn namespace(&self) -> String {
        format!("{NS_SERVICE_PREFIX}{}", self.name())
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `type` of a device-info request (doc §6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceInfoType {
    /// `all`.
    All,
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
    /// Any other value, sent as written.
    Other(String),
}

impl DeviceInfoType {
    /// The type of a name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "all" => Self::All,
            "image" => Self::Image,
            "hardware" => Self::Hardware,
            "filesystem" => Self::Filesystem,
            "udi" => Self::Udi,
            "profile" => Self::Profile,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Its name on the wire.
    pub fn name(&self) -> &str {
        match self {
            Self::All => "all",
            Self::Image => "image",
            Self::Hardware => "hardware",
            Self::Filesystem => "filesystem",
            Self::Udi => "udi",
            Self::Profile => "profile",
            Self::Other(name) => name,
        }
    }
}

/// Where a config-upgrade goes (`applyTo`, doc §6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyTo {
    /// `startup`.
    Startup,
    /// `running`.
    Running,
    /// Any other value, sent as written.
    Other(String),
}

impl ApplyTo {
    /// The target of a name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "startup" => Self::Startup,
            "running" => Self::Running,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Its name on the wire.
    pub fn name(&self) -> &str {
        match self {
            Self::Startup => "startup",
            Self::Running => "running",
            Self::Other(name) => name,
        }
    }
}

// ---------------------------------------------------------------- reading

/// Why an agent's body was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// More than [`BODY_CAP`] bytes.
    #[error("body of {0} bytes is over the cap")]
    TooLarge(usize),
    /// Not UTF-8.
    #[error("body is not UTF-8")]
    NotUtf8,
    /// quick-xml refused it.
    #[error("malformed XML: {0}")]
    Xml(String),
    /// A DTD (no DTDs, so no entity definitions, are accepted).
    #[error("a DTD is not accepted")]
    Dtd,
    /// An entity other than the five predefined ones.
    #[error("unknown entity &{0};")]
    Entity(String),
    /// An element prefix without a namespace declaration.
    #[error("unbound prefix {0:?}")]
    UnboundPrefix(String),
    /// Nesting deeper than [`DEPTH_CAP`] or more than [`ELEMENT_CAP`] elements.
    #[error("document over the depth or element cap")]
    TooComplex,
    /// No root element, text outside it, or a second root.
    #[error("not one root element")]
    NotOneRoot,
    /// The envelope or message is not what the document describes.
    #[error("{0}")]
    Shape(String),
}

/// A parsed element: local name, namespace, attributes by local name
/// (namespace declarations left out), children, text (trimmed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Element {
    ns: Option<String>,
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The trimmed text of the child `name`, if present and not empty.
    fn leaf(&self, name: &str) -> Option<String> {
        self.child(name)
            .map(|c| c.text.clone())
            .filter(|t| !t.is_empty())
    }

    /// The text of the descendant at `path`.
    fn leaf_at(&self, path: &[&str]) -> Option<String> {
        let (last, parents) = path.split_last()?;
        let mut at = self;
        for name in parents {
            at = at.child(name)?;
        }
        at.leaf(last)
    }
}

fn xml_error(e: impl fmt::Display) -> ParseError {
    ParseError::Xml(e.to_string())
}

/// The body as an element tree, under the caps.
fn parse_tree(body: &[u8]) -> Result<Element, ParseError> {
    if body.len() > BODY_CAP {
        return Err(ParseError::TooLarge(body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text).trim_start();
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(xml_error)?;
        let ns = match ns {
            ResolveResult::Bound(Namespace(ns)) => Some(ns.to_owned()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(prefix) => return Err(ParseError::UnboundPrefix(prefix)),
        };
        let closed = match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(ParseError::NotOneRoot);
            }
            Event::Start(start) => {
                stack.push(element(ns, &start, &mut elements)?);
                if stack.len() > DEPTH_CAP {
                    return Err(ParseError::TooComplex);
                }
                None
            }
            Event::Empty(start) => Some(element(ns, &start, &mut elements)?),
            Event::End(_) => Some(stack.pop().ok_or(ParseError::NotOneRoot)?),
            Event::Text(t) => {
                push_text(&mut stack, &t.xml10_content())?;
                None
            }
            Event::CData(c) => {
                push_text(&mut stack, &c.into_inner())?;
                None
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref().map_err(xml_error)? {
                    Some(ch) => Cow::Owned(ch.to_string()),
                    None => Cow::Borrowed(match &*r.into_inner() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        other => return Err(ParseError::Entity(other.chars().take(40).collect())),
                    }),
                };
                push_text(&mut stack, &ch)?;
                None
            }
            Event::DocType(_) => return Err(ParseError::Dtd),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => None,
            Event::Eof => break,
        };
        if let Some(mut done) = closed {
            done.text = done.text.trim().to_owned();
            match stack.last_mut() {
                Some(parent) => parent.children.push(done),
                None => root = Some(done),
            }
        }
    }
    if !stack.is_empty() {
        return Err(ParseError::NotOneRoot);
    }
    root.ok_or(ParseError::NotOneRoot)
}

/// A new element from its start tag (counted against the cap).
fn element(
    ns: Option<String>,
    start: &BytesStart<'_>,
    count: &mut usize,
) -> Result<Element, ParseError> {
    *count += 1;
    if *count > ELEMENT_CAP {
        return Err(ParseError::TooComplex);
    }
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(xml_error)?;
        let key = attr.key.0;
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let local = key.rsplit(':').next().unwrap_or(key).to_owned();
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(xml_error)?;
        attrs.push((local, value.into_owned()));
    }
    Ok(Element {
        ns,
        name: start.local_name().as_ref().to_owned(),
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Text belongs to the open element; outside the root only white space.
fn push_text(stack: &mut [Element], text: &str) -> Result<(), ParseError> {
    match stack.last_mut() {
        Some(open) => {
            open.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(ParseError::NotOneRoot),
    }
}

/// A message from the agent: envelope and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentMessage {
    /// The envelope's `udi`.
    pub udi: Option<Udi>,
    /// The envelope's `sid`.
    pub sid: Option<String>,
    /// What it carries.
    pub body: AgentBody,
}

/// The message element of an agent's envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentBody {
    /// `<info xmlns="urn:cisco:pnp:work-info">` (doc §5).
    WorkRequest(WorkRequest),
    /// `<response xmlns="urn:cisco:pnp:<service>">` (doc §6, §7.1).
    Response(Response),
    /// `<response xmlns="urn:cisco:pnp:fault">` (doc §7.2).
    Fault(Fault),
}

/// A work-request (doc §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkRequest {
    /// The agent's correlator.
    pub correlator: String,
    /// `<deviceId><udi>`.
    pub udi: Option<Udi>,
    /// `<deviceId><hostname>`.
    pub hostname: Option<String>,
    /// `<deviceId><authRequired>`.
    pub auth_required: bool,
    /// `<deviceId><viaProxy>`.
    pub via_proxy: bool,
    /// `<deviceId><macAddress>`.
    pub mac_address: Option<String>,
}

/// A job's response (doc §6, §7.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The service, from the element's namespace.
    pub service: Service,
    /// The correlator echoed.
    pub correlator: String,
    /// `success` (`1`/`true` or `0`/`false`).
    pub success: bool,
    /// `<errorInfo>`.
    pub error: Option<ErrorInfo>,
    /// What the response reports, by service.
    pub body: ResponseBody,
}

/// `<errorInfo>` of a failed response (doc §7.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorInfo {
    /// `errorSeverity`.
    pub severity: String,
    /// `errorCode`.
    pub code: String,
    /// `errorMessage`.
    pub message: String,
}

/// The service-specific part of a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseBody {
    /// Nothing besides `errorInfo`.
    Empty,
    /// A device-info answer (doc §6.1).
    DeviceInfo(DeviceInfoReply),
    /// The `serviceList` of a capability answer (doc §6.4).
    Capability(Vec<String>),
    /// The leaves of a topology answer, by name (doc §6.7, modelled).
    Topology(Vec<(String, String)>),
}

/// What a device-info answer reports (the fields servers read, doc §6.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfoReply {
    /// `<udi><primary-chassis>`.
    pub udi: Option<String>,
    /// `<imageInfo><versionString>`.
    pub version: Option<String>,
    /// `<imageInfo><imageFile>`.
    pub image_file: Option<String>,
    /// `<hardwareInfo><hostname>`.
    pub hostname: Option<String>,
    /// `<hardwareInfo><platformName>`.
    pub platform: Option<String>,
    /// `<hardwareInfo><boardId>`.
    pub board_id: Option<String>,
}

/// A fault: the agent could not parse the server's request (doc §7.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// `faultcode`, e.g. `XSVC:Client`.
    pub code: String,
    /// `faultstring`.
    pub string: String,
    /// The text of `<detail>`'s `details` element, whatever its prefix.
    pub details: Option<String>,
}

fn shape(text: impl Into<String>) -> ParseError {
    ParseError::Shape(text.into())
}

/// Parses a body the agent posted.
pub fn parse_agent_message(body: &[u8]) -> Result<AgentMessage, ParseError> {
    let root = parse_tree(body)?;
    if root.name != "pnp" || root.ns.as_deref() != Some(NS_PNP) {
        return Err(shape(format!(
            "root is {:?} in {:?}, not pnp in {NS_PNP}",
            root.name, root.ns
        )));
    }
    if root.attr("version") != Some("1.0") {
        return Err(shape("envelope without version=\"1.0\""));
    }
    let udi = root
        .attr("udi")
        .map(str::parse::<Udi>)
        .transpose()
        .map_err(|e| shape(e.to_string()))?;
    let sid = root.attr("sid").map(str::to_owned);
    let [message] = &root.children[..] else {
        return Err(shape(format!(
            "envelope with {} children, not one",
            root.children.len()
        )));
    };
    let service = message
        .ns
        .as_deref()
        .and_then(|ns| ns.strip_prefix(NS_SERVICE_PREFIX))
        .ok_or_else(|| shape(format!("{} in namespace {:?}", message.name, message.ns)))?;
    let body = match (message.name.as_str(), service) {
        ("info", "work-info") => AgentBody::WorkRequest(work_request(message)?),
        ("response", "fault") => AgentBody::Fault(fault(message)?),
        ("response", service) => AgentBody::Response(response(message, service)?),
        (name, service) => return Err(shape(format!("{name} of {service} from an agent"))),
    };
    Ok(AgentMessage { udi, sid, body })
}

/// `true`/`1` or `false`/`0`, any case.
fn boolean(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn flag(parent: &Element, name: &str) -> Result<bool, ParseError> {
    parent.leaf(name).map_or(Ok(false), |text| {
        boolean(&text).ok_or_else(|| shape(format!("{name} is {text:?}")))
    })
}

fn correlator(message: &Element) -> Result<String, ParseError> {
    message
        .attr("correlator")
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| shape(format!("{} without a correlator", message.name)))
}

fn work_request(info: &Element) -> Result<WorkRequest, ParseError> {
    let id = info
        .child("deviceId")
        .ok_or_else(|| shape("work-request without deviceId"))?;
    Ok(WorkRequest {
        correlator: correlator(info)?,
        udi: id
            .leaf("udi")
            .map(|u| u.parse())
            .transpose()
            .map_err(|e: UdiError| shape(e.to_string()))?,
        hostname: id.leaf("hostname"),
        auth_required: flag(id, "authRequired")?,
        via_proxy: flag(id, "viaProxy")?,
        mac_address: id.leaf("macAddress"),
    })
}

fn response(message: &Element, service: &str) -> Result<Response, ParseError> {
    let success = message
        .attr("success")
        .and_then(boolean)
        .ok_or_else(|| shape("response without success=1|0"))?;
    let error = message.child("errorInfo").map(|e| ErrorInfo {
        severity: e.leaf("errorSeverity").unwrap_or_default(),
        code: e.leaf("errorCode").unwrap_or_default(),
        message: e.leaf("errorMessage").unwrap_or_default(),
    });
    let service = Service::from_name(service);
    let body = match &service {
        Service::DeviceInfo => device_info(message),
        Service::Capability => message
            .child("serviceList")
            .map_or(ResponseBody::Empty, |list| {
                ResponseBody::Capability(
                    list.children
                        .iter()
                        .filter(|c| c.name == "service")
                        .map(|c| c.text.clone())
                        .collect(),
                )
            }),
        Service::Topology => message.child("topology").map_or(ResponseBody::Empty, |t| {
            ResponseBody::Topology(
                t.children
                    .iter()
                    .map(|c| (c.name.clone(), c.text.clone()))
                    .collect(),
            )
        }),
        _ => ResponseBody::Empty,
    };
    Ok(Response {
        service,
        correlator: correlator(message)?,
        success,
        error,
        body,
    })
}

fn device_info(message: &Element) -> ResponseBody {
    let reply = DeviceInfoReply {
        udi: message.leaf_at(&["udi", "primary-chassis"]),
        version: message.leaf_at(&["imageInfo", "versionString"]),
        image_file: message.leaf_at(&["imageInfo", "imageFile"]),
        hostname: message.leaf_at(&["hardwareInfo", "hostname"]),
        platform: message.leaf_at(&["hardwareInfo", "platformName"]),
        board_id: message.leaf_at(&["hardwareInfo", "boardId"]),
    };
    if reply == DeviceInfoReply::default() {
        ResponseBody::Empty
    } else {
        ResponseBody::DeviceInfo(reply)
    }
}

fn fault(message: &Element) -> Result<Fault, ParseError> {
    let fault = message
        .child("fault")
        .ok_or_else(|| shape("fault response without <fault>"))?;
    let details = fault
        .child("detail")
        .and_then(|d| d.child("error"))
        .and_then(|e| e.leaf("details"));
    Ok(Fault {
        code: fault.leaf("faultcode").unwrap_or_default(),
        string: fault.leaf("faultstring").unwrap_or_default(),
        details,
    })
}

// ---------------------------------------------------------------- writing

/// How server messages are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireOptions {
    /// openpnpy's form: `<ns0:pnp xmlns:ns0=… xmlns:ns1=…>` around
    /// `<ns1:request>` (or `<ns1:info>`) whose children are in no namespace.
    pub prefixed: bool,
    /// Alternative spellings: `callBackAfter`, only non-zero timer fields,
    /// `saveConfig` as `1`/`0`.
    pub alt_spellings: bool,
}

/// The envelope attributes of a server message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// `udi`.
    pub udi: Option<Udi>,
    /// `sid`.
    pub sid: Option<String>,
}

/// What a backoff asks for (doc §6.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackoffAction {
    /// `<callbackAfter>`.
    CallbackAfter {
        /// Hours.
        hours: u64,
        /// Minutes.
        minutes: u64,
        /// Seconds.
        seconds: u64,
    },
    /// `<defaultMinutes>`.
    DefaultMinutes(u32),
    /// `<terminate/>`.
    Terminate,
}

impl BackoffAction {
    /// `callbackAfter` of `secs` seconds, split into hours, minutes, seconds.
    pub fn after_secs(secs: u64) -> Self {
        Self::CallbackAfter {
            hours: secs / 3600,
            minutes: secs % 3600 / 60,
            seconds: secs % 60,
        }
    }
}

/// A `<reload>` element (doc §6.2, §6.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reload {
    /// `reason`.
    pub reason: String,
    /// `delayIn`.
    pub delay_in: u32,
    /// `user`.
    pub user: Option<String>,
    /// `saveConfig`.
    pub save_config: Option<bool>,
}

/// A job the server sends (doc §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Job {
    /// device-info of a type.
    DeviceInfo(DeviceInfoType),
    /// config-upgrade (`details="all"`).
    ConfigUpgrade {
        /// `source/location`.
        location: String,
        /// `source/checksum` (MD5 hex).
        checksum: Option<String>,
        /// `applyTo`.
        apply_to: ApplyTo,
        /// `<reload>`, or `<noReload/>` when `None`.
        reload: Option<Reload>,
    },
    /// image-install.
    ImageInstall {
        /// `source/location`.
        location: String,
        /// `source/checksum` (MD5 hex).
        checksum: Option<String>,
        /// `destination/location`.
        destination: Option<String>,
        /// `<reload>`.
        reload: Option<Reload>,
    },
    /// capability: an empty request.
    Capability,
    /// topology: an empty request.
    Topology,
    /// backoff.
    Backoff {
        /// `reason`.
        reason: Option<String>,
        /// What it asks for.
        action: BackoffAction,
    },
    /// An empty request in `urn:cisco:pnp:<service>`.
    Unsupported {
        /// The service name.
        service: String,
    },
}

impl Job {
    /// The service of the job.
    pub fn service(&self) -> Service {
        match self {
            Self::DeviceInfo(_) => Service::DeviceInfo,
            Self::ConfigUpgrade { .. } => Service::ConfigUpgrade,
            Self::ImageInstall { .. } => Service::ImageInstall,
            Self::Capability => Service::Capability,
            Self::Topology => Service::Topology,
            Self::Backoff { .. } => Service::Backoff,
            Self::Unsupported { service } => Service::from_name(service),
        }
    }
}

/// A node to write: name, attributes, text or children.
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: Option<String>,
    children: Vec<Node>,
}

impl Node {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            attrs: Vec::new(),
            text: None,
            children: Vec::new(),
        }
    }

    fn attr(mut self, name: &str, value: &str) -> Self {
        self.attrs.push((name.to_owned(), value.to_owned()));
        self
    }

    fn child(mut self, child: Node) -> Self {
        self.children.push(child);
        self
    }

    fn leaf(name: &str, text: &str) -> Self {
        let mut node = Self::new(name);
        node.text = Some(text.to_owned());
        node
    }

    fn write(&self, w: &mut Writer<Vec<u8>>) -> std::io::Result<()> {
        let start = BytesStart::new(self.name.as_str())
            .with_attributes(self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if self.text.is_none() && self.children.is_empty() {
            return w.write_event(Event::Empty(start));
        }
        w.write_event(Event::Start(start))?;
        if let Some(text) = &self.text {
            w.write_event(Event::Text(BytesText::new(text)))?;
        }
        for child in &self.children {
            child.write(w)?;
        }
        w.write_event(Event::End(BytesEnd::new(self.name.as_str())))
    }
}

/// Wraps `message` (named `element`, in `namespace`) in the envelope and
/// writes it in the form `options` asks for.
fn envelope(
    env: &Envelope,
    element: &str,
    namespace: &str,
    mut attrs: Vec<(String, String)>,
    children: Vec<Node>,
    options: WireOptions,
) -> std::io::Result<String> {
    let mut root = if options.prefixed {
        Node::new("ns0:pnp")
            .attr("xmlns:ns0", NS_PNP)
            .attr("xmlns:ns1", namespace)
    } else {
        Node::new("pnp").attr("xmlns", NS_PNP)
    };
    root = root.attr("version", "1.0");
    if let Some(udi) = &env.udi {
        root = root.attr("udi", udi.as_str());
    }
    if let Some(sid) = &env.sid {
        root = root.attr("sid", sid);
    }
    let mut message = if options.prefixed {
        Node::new(&format!("ns1:{element}"))
    } else {
        attrs.insert(0, ("xmlns".to_owned(), namespace.to_owned()));
        Node::new(element)
    };
    message.attrs = attrs;
    message.children = children;
    let mut writer = Writer::new(Vec::new());
    root.child(message).write(&mut writer)?;
    String::from_utf8(writer.into_inner())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A work-request's answer carrying `job` (doc §6).
pub fn encode_request(
    env: &Envelope,
    correlator: &str,
    job: &Job,
    options: WireOptions,
) -> std::io::Result<String> {
    let children = job_nodes(job, options);
    envelope(
        env,
        "request",
        &job.service().namespace(),
        vec![("correlator".to_owned(), correlator.to_owned())],
        children,
        options,
    )
}

/// `bye` (doc §6.6), echoing `correlator` when there is one (none after a
/// fault).
pub fn encode_bye(
    env: &Envelope,
    correlator: Option<&str>,
    options: WireOptions,
) -> std::io::Result<String> {
    let attrs = correlator
        .map(|c| vec![("correlator".to_owned(), c.to_owned())])
        .unwrap_or_default();
    let children = vec![Node::new("workInfo").child(Node::new("bye"))];
    envelope(
        env,
        "info",
        &format!("{NS_SERVICE_PREFIX}work-info"),
        attrs,
        children,
        options,
    )
}

fn source(location: &str, checksum: Option<&str>) -> Node {
    let mut node = Node::new("source").child(Node::leaf("location", location));
    if let Some(sum) = checksum {
        node = node.child(Node::leaf("checksum", sum));
    }
    node
}

fn reload_node(reload: &Reload, options: WireOptions) -> Node {
    let mut node = Node::new("reload")
        .child(Node::leaf("reason", &reload.reason))
        .child(Node::leaf("delayIn", &reload.delay_in.to_string()));
    if let Some(user) = &reload.user {
        node = node.child(Node::leaf("user", user));
    }
    if let Some(save) = reload.save_config {
        let text = match (save, options.alt_spellings) {
            (true, false) => "true",
            (false, false) => "false",
            (true, true) => "1",
            (false, true) => "0",
        };
        node = node.child(Node::leaf("saveConfig", text));
    }
    node
}

fn job_nodes(job: &Job, options: WireOptions) -> Vec<Node> {
    match job {
        Job::DeviceInfo(kind) => vec![Node::new("deviceInfo").attr("type", kind.name())],
        Job::ConfigUpgrade {
            location,
            checksum,
            apply_to,
            reload,
        } => {
            let copy = Node::new("copy")
                .child(source(location, checksum.as_deref()))
                .child(Node::leaf("applyTo", apply_to.name()));
            vec![
                Node::new("config").attr("details", "all").child(copy),
                match reload {
                    Some(reload) => reload_node(reload, options),
                    None => Node::new("noReload"),
                },
            ]
        }
        Job::ImageInstall {
            location,
            checksum,
            destination,
            reload,
        } => {
            let mut copy = Node::new("copy").child(source(location, checksum.as_deref()));
            if let Some(dest) = destination {
                copy = copy.child(Node::new("destination").child(Node::leaf("location", dest)));
            }
            let mut nodes = vec![Node::new("image").child(copy)];
            nodes.extend(reload.as_ref().map(|r| reload_node(r, options)));
            nodes
        }
        Job::Capability | Job::Topology | Job::Unsupported { .. } => Vec::new(),
        Job::Backoff { reason, action } => {
            let mut backoff = Node::new("backoff");
            if let Some(reason) = reason {
                backoff = backoff.child(Node::leaf("reason", reason));
            }
            backoff = backoff.child(match action {
                BackoffAction::CallbackAfter {
                    hours,
                    minutes,
                    seconds,
                } => {
                    let name = if options.alt_spellings {
                        "callBackAfter"
                    } else {
                        "callbackAfter"
                    };
                    let mut after = Node::new(name);
                    for (field, value) in
                        [("hours", hours), ("minutes", minutes), ("seconds", seconds)]
                    {
                        if *value != 0 || !options.alt_spellings {
                            after = after.child(Node::leaf(field, &value.to_string()));
                        }
                    }
                    after
                }
                BackoffAction::DefaultMinutes(m) => Node::leaf("defaultMinutes", &m.to_string()),
                BackoffAction::Terminate => Node::new("terminate"),
            });
            vec![backoff]
        }
    }
}

#[cfg(test)]
mod tests;
