//! Why an onboarding step or a PnP job failed for one client. The text of
//! each is what `show vstack download-status detail` and the PnP server's
//! error message show.
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::dataplane::DataplaneError;
use crate::mac::Mac;
use crate::smi::director::DirectorError;
use crate::smi::tftp::StagingError;
use crate::udi::Udi;

/// Why the logic could not do what a client or a job needed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The daemon is stopping (or `no vstack proxy` was entered).
    #[error("shutting down")]
    ShuttingDown,
    /// The kernel client map refused an update.
    #[error("{0}")]
    Kernel(#[from] DataplaneError),
    /// No probe to 4786 was answered.
    #[error("not an SMI client: {last}")]
    NotSmi {
        /// Why the last probe failed.
        last: String,
    },
    /// A director message could not be sent.
    #[error("{what}: {source}")]
    Send {
        /// What was being sent.
        what: &'static str,
        /// Why it failed.
        source: DirectorError,
    },
    /// A director message with a file to fetch could not be sent.
    #[error("client unreachable: {0}")]
    Unreachable(DirectorError),
    /// The client's TFTP transfer of a delivered file failed.
    #[error("TFTP error: {0}")]
    Transfer(String),
    /// The client did not fetch a delivered file in time.
    #[error("timeout: the client did not fetch {path} within {after:?}")]
    NotFetched {
        /// The staged file.
        path: String,
        /// How long the proxy waited.
        after: Duration,
    },
    /// The task completing a wait went away (a bug or a shutdown).
    #[error("{0}: waiter dropped")]
    WaiterDropped(&'static str),
    /// The reverse-telnet session ended in an error.
    #[error("reverse telnet: {0}")]
    Telnet(String),
    /// No reverse telnet came after the tailored configuration.
    #[error("no reverse telnet within {0:?} after the tailored configuration")]
    NoTelnet(Duration),
    /// The `show version` upload (type 8) failed.
    #[error("show version upload: {0}")]
    Upload(String),
    /// No `show version` upload came.
    #[error("no show version upload within {0:?}")]
    NoUpload(Duration),
    /// The `show version` text does not identify a device.
    #[error("show version: {0}")]
    ShowVersion(String),
    /// The address answered as another device than the one recorded.
    #[error("{}", .0)]
    OtherDevice(Box<OtherDevice>),
    /// A client did not come back from a reload.
    #[error("client gone: it did not come back within {0:?}")]
    NotBack(Duration),
    /// A client whose address the proxy no longer knows.
    #[error("client gone: no address known")]
    NoAddress,
    /// After an image install the client runs another image.
    #[error("the client reloaded into {running}, not {wanted}")]
    WrongImage {
        /// What it runs.
        running: String,
        /// The archive installed.
        wanted: String,
    },
    /// No PnP profile is active to fetch a job's file with.
    #[error("no PnP profile to fetch with")]
    NoProfile,
    /// The job's file could not be fetched from the PnP server.
    #[error("Source file not fetched: {0}")]
    SourceNotFetched(String),
    /// The job's URL names no file.
    #[error("Source file not found: no file name in the URL")]
    NoFileName,
    /// The fetched file's MD5 is not the one the job gives.
    #[error("Error verifying checksum: md5 {got} but the request says {want}")]
    Checksum {
        /// MD5 of the fetched file.
        got: String,
        /// MD5 the job asked for.
        want: String,
    },
    /// An image an SMI client cannot install.
    #[error(
        "{0}: SMI clients install .tar archives through an image list; this image cannot be served that way"
    )]
    NotTar(String),
    /// A file could not be staged on the TFTP server.
    #[error("{0}")]
    Staging(#[from] StagingError),
    /// The digest task of a fetched file failed.
    #[error("digest task: {0}")]
    Digest(String),
}

/// An address that answered as another device than the one recorded.
#[derive(Debug, thiserror::Error)]
#[error("{ip} answers as {udi}, but {mac} is {known}: not updated")]
pub struct OtherDevice {
    /// The client's address.
    pub ip: Ipv4Addr,
    /// The UDI it answered with.
    pub udi: Udi,
    /// The client.
    pub mac: Mac,
    /// The UDI recorded for it.
    pub known: Udi,
}
