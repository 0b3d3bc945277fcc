//! The PnP message types of both directions, as plain values: what the
//! server sends the agent ([`ServerMessage`]: jobs, backoff, `bye`), what the
//! agent sends the server ([`AgentMessage`]: work-requests, responses,
//! faults), and the `<pnp>` envelope both carry. No parsing or encoding here.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::{
    CAPABILITY_SERVICES, ERROR_SEVERITY_ERROR, FAULT_CODE_CLIENT, NS_SERVICE_PREFIX,
    PNP_ERROR_UNSUPPORTED_REQUEST, XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED,
    XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_FILESYSTEM, XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_HARDWARE,
};
use crate::udi::Udi;

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
/// [`MAX_CALLBACK`](super::MAX_CALLBACK). `defaultMinutes` is clamped to
/// [`DEFAULT_MINUTES_MIN`](super::DEFAULT_MINUTES_MIN)..=[`DEFAULT_MINUTES_MAX`](super::DEFAULT_MINUTES_MAX).
/// Non-numeric or negative values are refused with
/// [`PnpError::BadNumber`](super::PnpError::BadNumber); missing timer fields
/// count as 0; more than one of `callbackAfter`, `defaultMinutes`,
/// `terminate` is refused with [`PnpError::Conflicting`](super::PnpError::Conflicting).
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
