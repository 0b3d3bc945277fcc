//! The registry of files the TFTP server may serve, each under an
//! unguessable per-client path (hardening rule 7 of `docs/smi-protocol.md`).
//!
//! A request is answered only when its path, after one leading `/` is
//! stripped, equals a staged path exactly; nothing is ever resolved against
//! the filesystem. Paths holding `..`, a backslash or a control character
//! are refused before the lookup.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::TftpStats;

/// Lifetime of a staged file unless another is chosen.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);
/// Longest file name kept from a name hint.
pub const MAX_HINT_LEN: usize = 64;
/// Longest staged path.
pub const MAX_PATH_LEN: usize = 255;

/// Name used when a hint keeps no character.
const FALLBACK_NAME: &str = "file";

/// What a staged file serves.
#[derive(Clone, PartialEq, Eq)]
pub enum Content {
    /// Bytes held in memory (configurations, image lists).
    Memory(Bytes),
    /// A regular file on disk, opened when a transfer starts (images).
    File(PathBuf),
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Memory(bytes) => write!(f, "Memory({} bytes)", bytes.len()),
            Content::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl From<Bytes> for Content {
    fn from(bytes: Bytes) -> Self {
        Content::Memory(bytes)
    }
}

impl From<Vec<u8>> for Content {
    fn from(bytes: Vec<u8>) -> Self {
        Content::Memory(bytes.into())
    }
}

impl From<String> for Content {
    fn from(text: String) -> Self {
        Content::Memory(text.into())
    }
}

impl From<&'static str> for Content {
    fn from(text: &'static str) -> Self {
        Content::Memory(Bytes::from_static(text.as_bytes()))
    }
}

impl From<PathBuf> for Content {
    fn from(path: PathBuf) -> Self {
        Content::File(path)
    }
}

/// A staged file: its owner and its TFTP path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StagedFile {
    owner: String,
    path: String,
}

impl StagedFile {
    /// The path to request, relative (`<16 hex>/<name>`), without leading `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The owner given when staging (for example the client MAC).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The last path component, e.g. the name to write into an image list.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The URL a switch fetches: `tftp://<server>/<path>`.
    pub fn url(&self, server: IpAddr) -> String {
        match server {
            IpAddr::V4(ip) => format!("tftp://{ip}/{}", self.path),
            IpAddr::V6(ip) => format!("tftp://[{ip}]/{}", self.path),
        }
    }
}

/// A random directory whose files share one unguessable prefix, so that a
/// file named inside another (an image next to its image list) resolves.
#[derive(Debug, Clone)]
pub struct StagedDir {
    staging: Staging,
    owner: String,
    dir: String,
}

impl StagedDir {
    /// The directory part of the paths (16 hex digits).
    pub fn path(&self) -> &str {
        &self.dir
    }

    /// The owner of files added here.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Stages `content` as `<dir>/<name>`; `name` is one path component of
    /// `[A-Za-z0-9._-]`, not starting with `.`.
    pub fn add(&self, name: &str, content: impl Into<Content>) -> Result<StagedFile, StagingError> {
        let path = self.child(name)?;
        self.staging
            .insert(&self.owner, path, Kind::Download(content.into()))
    }

    /// Accepts one upload (WRQ) of at most `max_bytes` as `<dir>/<name>`.
    pub fn expect_upload(&self, name: &str, max_bytes: u64) -> Result<StagedFile, StagingError> {
        let path = self.child(name)?;
        self.staging.insert(
            &self.owner,
            path,
            Kind::Upload {
                max_bytes,
                claimed: false,
            },
        )
    }

    fn child(&self, name: &str) -> Result<String, StagingError> {
        if name.contains('/') {
            return Err(StagingError::InvalidPath(name.to_owned()));
        }
        Ok(format!("{}/{name}", self.dir))
    }
}

/// Why a file cannot be staged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StagingError {
    /// The path is empty, too long, has an empty, `.`-leading or `..`
    /// component, or a character outside `[A-Za-z0-9._-/]`.
    #[error("invalid staged path {0:?}")]
    InvalidPath(String),
    /// Another file is staged under that path.
    #[error("path {0:?} is already staged")]
    AlreadyStaged(String),
}

/// Why a request finds nothing to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum LookupError {
    /// The path can never be staged (traversal, backslash, control char).
    #[error("path refused: {0}")]
    Refused(&'static str),
    /// No file is staged there.
    #[error("no such staged file")]
    NotFound,
    /// The path is not open for upload.
    #[error("not open for upload")]
    NotWritable,
    /// Another upload to the path is running.
    #[error("an upload to this path is already running")]
    UploadBusy,
}

/// A file found for a read request.
#[derive(Debug, Clone)]
pub(super) struct ReadTarget {
    /// The staged path.
    pub(super) path: String,
    /// Its owner.
    pub(super) owner: String,
    /// What to send.
    pub(super) content: Content,
}

/// An upload slot claimed by a write request.
#[derive(Debug, Clone)]
pub(super) struct UploadTarget {
    /// The staged path.
    pub(super) path: String,
    /// Its owner.
    pub(super) owner: String,
    /// Size cap.
    pub(super) max_bytes: u64,
}

enum Kind {
    Download(Content),
    Upload { max_bytes: u64, claimed: bool },
}

struct Entry {
    owner: String,
    kind: Kind,
    expires: Option<Instant>,
}

/// Expired entries are invisible at once ([`Files::live`]) and reclaimed
/// by a sweep at most this often: a sweep walks every entry, and with
/// tens of thousands of switches staged, one per request was most of the
/// proxy's CPU.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The staged paths, ordered (a directory's paths are one range).
#[derive(Default)]
struct Files {
    map: BTreeMap<String, Entry>,
    swept: Option<Instant>,
}

impl Files {
    /// Drops expired entries, unless a sweep ran less than [`SWEEP_EVERY`] ago.
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY)
        {
            return;
        }
        self.swept = Some(now);
        self.map
            .retain(|_, entry| entry.expires.is_none_or(|at| now < at));
    }

    /// The entry at `path` if it has not expired (an expired one is dropped).
    fn live(&mut self, path: &str, now: Instant) -> Option<&mut Entry> {
        if self
            .map
            .get(path)
            .is_some_and(|e| e.expires.is_some_and(|at| now >= at))
        {
            self.map.remove(path);
        }
        self.map.get_mut(path)
    }

    /// Whether any path lies in directory `dir`.
    fn has_dir(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.map
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(path, _)| path.starts_with(&prefix))
    }
}

struct Shared {
    files: Mutex<Files>,
    default_ttl: Option<Duration>,
    stats: Arc<TftpStats>,
}

/// Registry of staged files; clones share it.
#[derive(Clone)]
pub struct Staging {
    shared: Arc<Shared>,
}

impl fmt::Debug for Staging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Staging")
            .field("files", &self.len())
            .field("default_ttl", &self.shared.default_ttl)
            .finish()
    }
}

impl Default for Staging {
    fn default() -> Self {
        Self::new()
    }
}

impl Staging {
    /// An empty registry whose files expire after [`DEFAULT_TTL`].
    pub fn new() -> Self {
        Self::with_ttl(Some(DEFAULT_TTL))
    }

    /// An empty registry whose files expire after `default_ttl` (`None`:
    /// never). Expired files are removed lazily, on the next call.
    pub fn with_ttl(default_ttl: Option<Duration>) -> Self {
        Self::counting_into(default_ttl, Arc::default())
    }

    /// As [`Staging::with_ttl`], its servers counting into `stats` (kept by
    /// the caller across restarts of the servers).
    pub fn counting_into(default_ttl: Option<Duration>, stats: Arc<TftpStats>) -> Self {
        Staging {
            shared: Arc::new(Shared {
                files: Mutex::new(Files::default()),
                default_ttl,
                stats,
            }),
        }
    }

    /// Stages `content` as `<16 random hex>/<sanitized name_hint>`.
    ///
    /// The hint keeps only `[A-Za-z0-9._-]`, no leading dot and no run of
    /// dots, at most [`MAX_HINT_LEN`] characters (`file` if nothing is left).
    pub fn stage(
        &self,
        owner: impl Into<String>,
        name_hint: &str,
        content: impl Into<Content>,
    ) -> StagedFile {
        self.insert_random(owner.into(), name_hint, Kind::Download(content.into()))
    }

    /// Stages `content` under a path fixed by the caller (components of
    /// `[A-Za-z0-9._-]` separated by `/`, none starting with `.`). Such a
    /// path is only as unguessable as the caller makes it; prefer
    /// [`Staging::stage_dir`].
    pub fn stage_at(
        &self,
        owner: impl Into<String>,
        exact_path: &str,
        content: impl Into<Content>,
    ) -> Result<StagedFile, StagingError> {
        self.insert(
            &owner.into(),
            exact_path.to_owned(),
            Kind::Download(content.into()),
        )
    }

    /// A new random directory for files that must sit side by side.
    pub fn stage_dir(&self, owner: impl Into<String>) -> StagedDir {
        let files = self.lock();
        let dir = loop {
            let dir = random_dir();
            if !files.has_dir(&dir) {
                break dir;
            }
        };
        StagedDir {
            staging: self.clone(),
            owner: owner.into(),
            dir,
        }
    }

    /// Opens `<16 random hex>/<sanitized name_hint>` for one upload (WRQ)
    /// of at most `max_bytes`. The received bytes arrive in
    /// [`TftpEvent::Uploaded`](super::TftpEvent::Uploaded) and the path is
    /// then closed; a failed upload leaves it open.
    pub fn expect_upload(
        &self,
        owner: impl Into<String>,
        name_hint: &str,
        max_bytes: u64,
    ) -> StagedFile {
        self.insert_random(
            owner.into(),
            name_hint,
            Kind::Upload {
                max_bytes,
                claimed: false,
            },
        )
    }

    /// Removes one staged path; transfers already running finish. Returns
    /// whether it was staged.
    pub fn unstage(&self, path: &str) -> bool {
        self.lock().map.remove(path).is_some()
    }

    /// Removes every path of `owner`; returns how many.
    pub fn unstage_owner(&self, owner: &str) -> usize {
        let mut files = self.lock();
        let before = files.map.len();
        files.map.retain(|_, entry| entry.owner != owner);
        before.saturating_sub(files.map.len())
    }

    /// Sets the lifetime of a staged path, counted from now (`None`: never
    /// expires). Returns whether it was staged.
    pub fn set_ttl(&self, path: &str, ttl: Option<Duration>) -> bool {
        let now = Instant::now();
        let mut files = self.lock();
        files.sweep(now);
        match files.live(path, now) {
            Some(entry) => {
                entry.expires = expiry(now, ttl);
                true
            }
            None => false,
        }
    }

    /// Whether `path` is staged (for download or upload) and not expired.
    pub fn contains(&self, path: &str) -> bool {
        let now = Instant::now();
        let mut files = self.lock();
        files.sweep(now);
        files.live(path, now).is_some()
    }

    /// Number of staged paths, expired ones included until swept.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True when nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters of the servers serving this registry.
    pub fn stats(&self) -> Arc<TftpStats> {
        Arc::clone(&self.shared.stats)
    }

    /// Finds the file a read request names.
    pub(super) fn lookup_read(&self, requested: &str) -> Result<ReadTarget, LookupError> {
        let path = normalize_request(requested)?;
        let now = Instant::now();
        let mut files = self.lock();
        files.sweep(now);
        match files.live(path, now) {
            Some(Entry {
                owner,
                kind: Kind::Download(content),
                ..
            }) => Ok(ReadTarget {
                path: path.to_owned(),
                owner: owner.clone(),
                content: content.clone(),
            }),
            Some(Entry {
                kind: Kind::Upload { .. },
                ..
            })
            | None => Err(LookupError::NotFound),
        }
    }

    /// Claims the upload slot a write request names.
    pub(super) fn claim_upload(&self, requested: &str) -> Result<UploadTarget, LookupError> {
        let path = normalize_request(requested)?;
        let now = Instant::now();
        let mut files = self.lock();
        files.sweep(now);
        match files.live(path, now) {
            Some(Entry {
                owner,
                kind: Kind::Upload { max_bytes, claimed },
                ..
            }) => {
                if *claimed {
                    return Err(LookupError::UploadBusy);
                }
                *claimed = true;
                Ok(UploadTarget {
                    path: path.to_owned(),
                    owner: owner.clone(),
                    max_bytes: *max_bytes,
                })
            }
            Some(_) | None => Err(LookupError::NotWritable),
        }
    }

    /// Closes an upload slot after a successful upload.
    pub(super) fn finish_upload(&self, path: &str) {
        let mut files = self.lock();
        if let Some(Entry {
            kind: Kind::Upload { .. },
            ..
        }) = files.map.get(path)
        {
            files.map.remove(path);
        }
    }

    /// Reopens an upload slot after a failed upload.
    pub(super) fn release_upload(&self, path: &str) {
        if let Some(Entry {
            kind: Kind::Upload { claimed, .. },
            ..
        }) = self.lock().map.get_mut(path)
        {
            *claimed = false;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Files> {
        self.shared
            .files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn insert_random(&self, owner: String, name_hint: &str, kind: Kind) -> StagedFile {
        let name = sanitize_hint(name_hint);
        let now = Instant::now();
        let mut files = self.lock();
        files.sweep(now);
        let path = loop {
            let path = format!("{}/{name}", random_dir());
            if files.live(&path, now).is_none() {
                break path;
            }
        };
        files.map.insert(
            path.clone(),
            Entry {
                owner: owner.clone(),
                kind,
                expires: expiry(now, self.shared.default_ttl),
            },
        );
        StagedFile { owner, path }
    }

    fn insert(&self, owner: &str, path: String, kind: Kind) -> Result<StagedFile, StagingError> {
        if !is_valid_path(&path) {
            return Err(StagingError::InvalidPath(path));
        }
        let now = Instant::now();
        let mut files = self.lock();
        files.sweep(now);
        if files.live(&path, now).is_some() {
            return Err(StagingError::AlreadyStaged(path));
        }
        files.map.insert(
            path.clone(),
            Entry {
                owner: owner.to_owned(),
                kind,
                expires: expiry(now, self.shared.default_ttl),
            },
        );
        Ok(StagedFile {
            owner: owner.to_owned(),
            path,
        })
    }
}

/// 64 random bits from the thread's CSPRNG, as 16 hex digits.
fn random_dir() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn expiry(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    // An unrepresentable expiry is as good as none.
    ttl.and_then(|ttl| now.checked_add(ttl))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn sanitize_hint(hint: &str) -> String {
    let mut name = String::new();
    for c in hint.chars() {
        if name.len() >= MAX_HINT_LEN {
            break;
        }
        if !is_name_char(c) || (c == '.' && (name.is_empty() || name.ends_with('.'))) {
            continue;
        }
        name.push(c);
    }
    if name.is_empty() {
        FALLBACK_NAME.to_owned()
    } else {
        name
    }
}

fn is_valid_path(path: &str) -> bool {
    path.len() <= MAX_PATH_LEN
        && path.split('/').all(|component| {
            !component.is_empty()
                && !component.starts_with('.')
                && !component.contains("..")
                && component.chars().all(is_name_char)
        })
}

/// Strips one leading `/` and refuses what no staged path can hold.
fn normalize_request(requested: &str) -> Result<&str, LookupError> {
    let path = requested.strip_prefix('/').unwrap_or(requested);
    if path.contains("..") {
        return Err(LookupError::Refused("parent directory reference"));
    }
    if path.contains('\\') {
        return Err(LookupError::Refused("backslash"));
    }
    if path.chars().any(char::is_control) {
        return Err(LookupError::Refused("control character"));
    }
    if path.is_empty() || path.len() > MAX_PATH_LEN {
        return Err(LookupError::NotFound);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn is_random_dir(dir: &str) -> bool {
        dir.len() == 16 && dir.bytes().all(|b| b.is_ascii_hexdigit())
    }

    #[test]
    fn stage_gives_random_dir_and_sanitized_name() {
        let staging = Staging::new();
        let file = staging.stage("aa:bb", "../../etc/pass wd;rm -rf", "x");
        let (dir, name) = file.path().split_once('/').unwrap();
        assert!(is_random_dir(dir), "{dir}");
        assert_eq!(name, "etcpasswdrm-rf");
        assert_eq!(file.owner(), "aa:bb");
        assert_eq!(file.name(), name);
        let other = staging.stage("aa:bb", "../../etc/pass wd;rm -rf", "x");
        assert_ne!(file.path(), other.path());
    }

    #[test]
    fn hints_are_sanitized() {
        assert_eq!(
            sanitize_hint("c2960-lanbasek9-tar.150-2.SE11.tar"),
            "c2960-lanbasek9-tar.150-2.SE11.tar"
        );
        assert_eq!(sanitize_hint(""), FALLBACK_NAME);
        assert_eq!(sanitize_hint("/\\..\0\n"), FALLBACK_NAME);
        assert_eq!(sanitize_hint("..a..b...c."), "a.b.c.");
        assert_eq!(sanitize_hint("é.cfg"), "cfg");
        assert_eq!(sanitize_hint(&"x".repeat(100)).len(), MAX_HINT_LEN);
    }

    #[test]
    fn dir_files_share_the_directory() {
        let staging = Staging::new();
        let dir = staging.stage_dir("m");
        assert!(is_random_dir(dir.path()));
        let list = dir.add("c2960.txt", "c2960.tar").unwrap();
        let image = dir
            .add("c2960.tar", Content::File("/srv/c2960.tar".into()))
            .unwrap();
        assert_eq!(list.path(), format!("{}/c2960.txt", dir.path()));
        assert_eq!(image.path(), format!("{}/c2960.tar", dir.path()));
        assert_eq!(image.owner(), "m");
        assert_eq!(
            dir.add("c2960.tar", "again"),
            Err(StagingError::AlreadyStaged(image.path().to_owned()))
        );
        for bad in ["", "a/b", "..", ".hidden", "a b", "a\\b", "x..y"] {
            assert!(
                matches!(dir.add(bad, "x"), Err(StagingError::InvalidPath(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn stage_at_validates_the_path() {
        let staging = Staging::new();
        let file = staging.stage_at("m", "abc/def.cfg", "x").unwrap();
        assert_eq!(file.path(), "abc/def.cfg");
        for bad in [
            "/abs",
            "a//b",
            "a/",
            "../x",
            "a/../b",
            "a/./b",
            "a\\b",
            "a\0b",
            "a\nb",
            &"x".repeat(MAX_PATH_LEN + 1),
        ] {
            assert!(
                matches!(
                    staging.stage_at("m", bad, "x"),
                    Err(StagingError::InvalidPath(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn lookups_match_exact_paths_only() {
        let staging = Staging::new();
        let file = staging.stage("m", "x.cfg", "data");
        let found = staging.lookup_read(file.path()).unwrap();
        assert_eq!(
            (found.path.as_str(), found.owner.as_str()),
            (file.path(), "m")
        );
        assert_eq!(found.content, Content::Memory(Bytes::from_static(b"data")));
        assert!(staging.lookup_read(&format!("/{}", file.path())).is_ok());
        for miss in [
            format!("//{}", file.path()),
            file.path().to_uppercase(),
            format!("{}.", file.path()),
            format!("{}/", file.path()),
            file.path().split('/').next().unwrap().to_owned(),
            file.name().to_owned(),
            String::new(),
            "/".to_owned(),
            "/etc/passwd".to_owned(),
        ] {
            assert_eq!(
                staging.lookup_read(&miss).unwrap_err(),
                LookupError::NotFound,
                "{miss:?}"
            );
        }
    }

    #[test]
    fn traversal_and_odd_characters_are_refused() {
        let staging = Staging::new();
        let file = staging.stage("m", "x.cfg", "data");
        let (dir, name) = file.path().split_once('/').unwrap();
        for attempt in [
            format!("../{}", file.path()),
            format!("{dir}/../{dir}/{name}"),
            format!("/{dir}/..\\{name}"),
            format!("{dir}\\{name}"),
            format!("{}\0", file.path()),
            format!("{}\n", file.path()),
            format!("{}\u{7f}", file.path()),
            format!("{}\u{85}", file.path()),
            "..".to_owned(),
            "/../../etc/passwd".to_owned(),
            "C:\\boot.ini".to_owned(),
        ] {
            assert!(
                matches!(staging.lookup_read(&attempt), Err(LookupError::Refused(_))),
                "{attempt:?}"
            );
            assert!(
                matches!(staging.claim_upload(&attempt), Err(LookupError::Refused(_))),
                "{attempt:?}"
            );
        }
    }

    #[test]
    fn unstage_and_unstage_owner() {
        let staging = Staging::new();
        let a = staging.stage("m1", "a", "1");
        let b = staging.stage("m1", "b", "2");
        let c = staging.stage("m2", "c", "3");
        assert_eq!(staging.len(), 3);
        assert!(staging.unstage(a.path()));
        assert!(!staging.unstage(a.path()));
        assert_eq!(staging.unstage_owner("m1"), 1);
        assert!(!staging.contains(b.path()));
        assert!(staging.contains(c.path()));
        assert_eq!(staging.unstage_owner("m2"), 1);
        assert!(staging.is_empty());
    }

    #[test]
    fn expired_files_are_swept() {
        let staging = Staging::with_ttl(Some(Duration::ZERO));
        let gone = staging.stage("m", "a", "1");
        assert!(!staging.contains(gone.path()));
        assert!(staging.lookup_read(gone.path()).is_err());

        let staging = Staging::new();
        let file = staging.stage("m", "a", "1");
        assert!(staging.set_ttl(file.path(), None));
        assert!(staging.contains(file.path()));
        assert!(staging.set_ttl(file.path(), Some(Duration::ZERO)));
        assert!(!staging.contains(file.path()));
        assert!(!staging.set_ttl(file.path(), None));
        assert!(staging.is_empty());
    }

    #[test]
    fn upload_slots_are_claimed_once() {
        let staging = Staging::new();
        let slot = staging.expect_upload("m", "running.cfg", 100);
        assert_eq!(
            staging.lookup_read(slot.path()).unwrap_err(),
            LookupError::NotFound
        );
        let claimed = staging.claim_upload(slot.path()).unwrap();
        assert_eq!((claimed.owner.as_str(), claimed.max_bytes), ("m", 100));
        assert_eq!(
            staging.claim_upload(slot.path()).unwrap_err(),
            LookupError::UploadBusy
        );
        staging.release_upload(slot.path());
        assert!(staging.claim_upload(slot.path()).is_ok());
        staging.finish_upload(slot.path());
        assert_eq!(
            staging.claim_upload(slot.path()).unwrap_err(),
            LookupError::NotWritable
        );

        let download = staging.stage("m", "x", "1");
        assert_eq!(
            staging.claim_upload(download.path()).unwrap_err(),
            LookupError::NotWritable
        );
        staging.finish_upload(download.path());
        assert!(staging.contains(download.path()));
    }

    #[test]
    fn urls() {
        let staging = Staging::new();
        let file = staging.stage_at("m", "d/x.cfg", "1").unwrap();
        assert_eq!(
            file.url(Ipv4Addr::new(192, 0, 2, 1).into()),
            "tftp://192.0.2.1/d/x.cfg"
        );
        assert_eq!(file.url(Ipv6Addr::LOCALHOST.into()), "tftp://[::1]/d/x.cfg");
    }
}
