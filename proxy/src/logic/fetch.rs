//! Files fetched from the PnP server, shared by the clients that install
//! them at the same time: a thousand switches given the same image cause
//! one download and hold one copy in memory, not a thousand, and its MD5
//! digest is computed once (off the runtime threads), not a thousand times.
//!
//! An entry lives while a client uses it ([`Shared`] handles); the last
//! handle dropped removes it, so nothing is kept at rest. A failed fetch is
//! not remembered: the next client tries again.
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use md5::{Digest as _, Md5};
use tokio::sync::OnceCell;

use super::CoreError;

type Cell = Arc<OnceCell<Fetched>>;

/// A fetched file and its digest.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The contents.
    pub data: Bytes,
    /// Lower-case hex MD5 of `data`.
    pub md5: Arc<str>,
}

impl Fetched {
    /// `data` with its digest, computed on a blocking thread (an image
    /// of hundreds of megabytes takes a second).
    pub async fn new(data: Bytes) -> Result<Self, CoreError> {
        let copy = data.clone();
        let md5 = tokio::task::spawn_blocking(move || hex::encode(Md5::digest(&copy)))
            .await
            .map_err(|e| CoreError::Digest(e.to_string()))?;
        Ok(Self {
            data,
            md5: md5.into(),
        })
    }
}

/// Downloads in flight or in use, by URL.
#[derive(Default)]
pub struct FetchCache {
    entries: Arc<Mutex<HashMap<String, Cell>>>,
}

/// One client's use of a cached file; dropping it releases the entry.
pub struct Shared {
    url: String,
    cell: Option<Cell>,
    entries: Arc<Mutex<HashMap<String, Cell>>>,
}

impl FetchCache {
    /// The contents of `url` and their digest: fetched by `fetch` unless
    /// another client's copy is in use or being fetched, in which case that
    /// one is awaited.
    pub async fn get<F, Fut>(&self, url: &str, fetch: F) -> Result<(Shared, Fetched), CoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, CoreError>>,
    {
        let cell = self
            .lock()
            .entry(url.to_owned())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let shared = Shared {
            url: url.to_owned(),
            cell: Some(cell),
            entries: self.entries.clone(),
        };
        let fetch_and_digest = || async { Fetched::new(fetch().await?).await };
        let fetched = match &shared.cell {
            Some(cell) => cell.get_or_try_init(fetch_and_digest).await?.clone(),
            None => fetch_and_digest().await?,
        };
        Ok((shared, fetched))
    }

    /// URLs with an entry (in use or being fetched).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no entry exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cell>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else {
            return;
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        drop(cell);
        // Only the map's own reference left: nobody uses or fetches it.
        if entries
            .get(&self.url)
            .is_some_and(|c| Arc::strong_count(c) == 1)
        {
            entries.remove(&self.url);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn one_fetch_for_concurrent_users_and_nothing_kept() {
        let cache = Arc::new(FetchCache::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (cache, fetches, mut gate) = (cache.clone(), fetches.clone(), gate_rx.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get("http://s/img.tar", || async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|open| *open).await;
                        Ok(Bytes::from_static(b"image"))
                    })
                    .await
            }));
        }
        let _ = gate_tx.send(true);
        let mut held = Vec::new();
        for t in tasks {
            let (shared, fetched) = t.await.expect("task").expect("fetch");
            assert_eq!(&fetched.data[..], b"image");
            assert_eq!(&*fetched.md5, "78805a221a988e79ef3f42d7c5bfd418");
            held.push(shared);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert_eq!(cache.len(), 1);
        held.clear();
        assert!(cache.is_empty(), "released after the last user");
    }

    #[tokio::test]
    async fn failures_are_not_remembered() {
        let cache = FetchCache::default();
        let failed = cache
            .get("u", || async {
                Err(CoreError::SourceNotFetched("server gone".into()))
            })
            .await;
        assert_eq!(
            failed.err().map(|e| e.to_string()).as_deref(),
            Some("Source file not fetched: server gone")
        );
        assert!(cache.is_empty());
        let (_held, fetched) = cache
            .get("u", || async { Ok(Bytes::from_static(b"ok")) })
            .await
            .expect("second try");
        assert_eq!(&fetched.data[..], b"ok");
    }
}
