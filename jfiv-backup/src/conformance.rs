//! The [`BackupTarget`] conformance suite.
//!
//! Each check is an async function over a fresh `&dyn BackupTarget`. The
//! [`backup_target_conformance!`](crate::backup_target_conformance) macro stamps one named
//! `#[test]` per check for an implementation:
//!
//! ```ignore
//! jfiv_backup::backup_target_conformance!(disk, {
//!     let dir = tempfile::tempdir().unwrap();
//!     let target = jfiv_backup::DiskTarget::create(dir.path()).unwrap();
//!     jfiv_backup::conformance::Fixture::with_guard(target, dir)
//! });
//! ```
//!
//! Checks that need to read chunks back adapt to [`Capabilities::random_access`]: on a
//! sequential target they check that reading is refused with
//! [`Error::Unsupported`](crate::Error::Unsupported) (or works) rather than returning wrong data.

// A check fails by panicking: unwrap is the point here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;
use std::sync::Arc;

use crate::{
    BackupOptions, BackupTarget, Capabilities, ChunkId, DirectorySource, Error, ExtractOptions,
    NoProgress, RepositoryKey, Selection, SnapshotId, Stored, format,
};

/// A target under test, with whatever must live as long as it (a temporary directory).
pub struct Fixture {
    /// The target.
    pub target: Arc<dyn BackupTarget>,
    _guard: Box<dyn Any + Send>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// A target that needs nothing else.
    pub fn new(target: impl BackupTarget + 'static) -> Self {
        Self {
            target: Arc::new(target),
            _guard: Box::new(()),
        }
    }

    /// A target with a guard dropped after it.
    pub fn with_guard(target: impl BackupTarget + 'static, guard: impl Any + Send) -> Self {
        Self {
            target: Arc::new(target),
            _guard: Box::new(guard),
        }
    }
}

/// Runs an async check on a multi-threaded runtime (the pipeline uses the blocking pool).
///
/// # Panics
/// If the runtime cannot be built, or the check panics (that is how a check fails).
pub fn run<F: Future<Output = ()>>(check: F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    rt.block_on(check);
}

fn sample_chunk(key: &RepositoryKey, n: u8) -> (ChunkId, Vec<u8>) {
    let plain: Vec<u8> = (0..10_000u32).map(|i| (i as u8).wrapping_mul(n)).collect();
    let id = key.chunk_id(&plain);
    let blob = format::encode_chunk(key, &id, &plain, 1).expect("encode");
    (id, blob)
}

fn can_read(caps: Capabilities) -> bool {
    caps.random_access
}

/// `put_chunk` then `has_chunk` is true, and `get_chunk` returns the blob (random access).
pub async fn put_then_has_and_get(t: &dyn BackupTarget) {
    let key = RepositoryKey::generate();
    let (id, blob) = sample_chunk(&key, 3);
    assert!(!t.has_chunk(&id).await.unwrap());
    assert_eq!(t.put_chunk(&id, blob.clone()).await.unwrap(), Stored::New);
    assert!(t.has_chunk(&id).await.unwrap());
    t.flush().await.unwrap();
    assert!(t.has_chunk(&id).await.unwrap());
    match t.get_chunk(&id).await {
        Ok(back) => assert_eq!(back, blob),
        Err(Error::Unsupported { .. }) => assert!(!can_read(t.capabilities())),
        Err(e) => panic!("get_chunk failed: {e}"),
    }
}

/// Storing the same id twice keeps the first blob and reports `AlreadyPresent`.
pub async fn put_is_idempotent(t: &dyn BackupTarget) {
    let key = RepositoryKey::generate();
    let (id, blob) = sample_chunk(&key, 5);
    assert_eq!(t.put_chunk(&id, blob.clone()).await.unwrap(), Stored::New);
    let mut other = blob.clone();
    other[20] ^= 1;
    assert_eq!(
        t.put_chunk(&id, other).await.unwrap(),
        Stored::AlreadyPresent
    );
    t.flush().await.unwrap();
    assert_eq!(
        t.put_chunk(&id, blob.clone()).await.unwrap(),
        Stored::AlreadyPresent
    );
    if can_read(t.capabilities()) {
        assert_eq!(t.get_chunk(&id).await.unwrap(), blob);
    }
}

/// An unknown chunk is absent, and reading it is `NotFound` (or `Unsupported`).
pub async fn missing_chunk_is_not_found(t: &dyn BackupTarget) {
    let id = ChunkId([0x42; 32]);
    assert!(!t.has_chunk(&id).await.unwrap());
    match t.get_chunk(&id).await {
        Err(Error::NotFound { .. }) => {}
        Err(Error::Unsupported { .. }) if !can_read(t.capabilities()) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// A manifest is listed and read back as stored; storing its id twice fails.
pub async fn manifest_round_trip(t: &dyn BackupTarget) {
    let key = RepositoryKey::generate();
    let (id, blob) = sample_chunk(&key, 7);
    t.put_chunk(&id, blob).await.unwrap();
    let snap = SnapshotId::random();
    let manifest_blob = format::encode_manifest(&key, &snap, b"{}").unwrap();
    t.put_manifest(&snap, manifest_blob.clone()).await.unwrap();
    assert!(t.list_manifests().await.unwrap().contains(&snap));
    assert_eq!(t.get_manifest(&snap).await.unwrap(), manifest_blob);
    assert!(t.put_manifest(&snap, manifest_blob).await.is_err());
    // The chunk stored before the manifest is durable now.
    assert!(t.has_chunk(&id).await.unwrap());
}

/// Reading an unknown manifest is `NotFound`.
pub async fn missing_manifest_is_not_found(t: &dyn BackupTarget) {
    let snap = SnapshotId([9; 16]);
    assert!(!t.list_manifests().await.unwrap().contains(&snap));
    assert!(matches!(
        t.get_manifest(&snap).await,
        Err(Error::NotFound { .. })
    ));
}

/// Many chunks stored in a row, then one flush: all present afterwards.
pub async fn many_chunks_then_flush(t: &dyn BackupTarget) {
    let key = RepositoryKey::generate();
    let chunks: Vec<_> = (10..40u8).map(|n| sample_chunk(&key, n)).collect();
    for (id, blob) in &chunks {
        assert_eq!(t.put_chunk(id, blob.clone()).await.unwrap(), Stored::New);
    }
    t.flush().await.unwrap();
    for (id, blob) in &chunks {
        assert!(t.has_chunk(id).await.unwrap());
        if can_read(t.capabilities()) {
            assert_eq!(&t.get_chunk(id).await.unwrap(), blob);
        }
    }
}

/// The engine backs a small tree up to the target; on random-access targets it reads back
/// bit for bit.
pub async fn backup_and_read_back(t: &dyn BackupTarget) {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("sub")).unwrap();
    std::fs::write(data.path().join("sub/a.txt"), b"hello").unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(data.path().join("big.bin"), &big).unwrap();
    let key = RepositoryKey::generate();
    let source = DirectorySource::new("conformance").root_as(data.path(), "data");
    let report = crate::backup(
        &source,
        t,
        &key,
        None,
        &BackupOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(report.stats.files, 2);
    assert!(
        t.list_manifests()
            .await
            .unwrap()
            .contains(&report.manifest.snapshot)
    );
    let loaded = crate::load_manifest(t, &key, &report.manifest.snapshot)
        .await
        .unwrap();
    assert_eq!(loaded, report.manifest);
    if can_read(t.capabilities()) {
        let out = tempfile::tempdir().unwrap();
        let r = crate::extract(
            t,
            &key,
            &loaded,
            &Selection::all(),
            out.path(),
            ExtractOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
        assert!(r.is_complete(), "{r:?}");
        assert_eq!(std::fs::read(out.path().join("data/big.bin")).unwrap(), big);
        assert_eq!(
            std::fs::read(out.path().join("data/sub/a.txt")).unwrap(),
            b"hello"
        );
    }
}

/// A key that is not the store's is refused before anything is written.
pub async fn wrong_key_is_refused_before_writing(t: &dyn BackupTarget) {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("f"), b"x").unwrap();
    let source = DirectorySource::new("conformance").root_as(data.path(), "data");
    let key = RepositoryKey::generate();
    crate::backup(
        &source,
        t,
        &key,
        None,
        &BackupOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    std::fs::write(data.path().join("g"), b"new content never seen").unwrap();
    let before = t.list_manifests().await.unwrap().len();
    let other = RepositoryKey::generate();
    let err = crate::backup(
        &source,
        t,
        &other,
        None,
        &BackupOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::WrongKey { .. }), "{err}");
    assert_eq!(t.list_manifests().await.unwrap().len(), before);
    let id_under_other = other.chunk_id(b"new content never seen");
    assert!(!t.has_chunk(&id_under_other).await.unwrap());
}

/// Stamps one `#[test]` per conformance check for a target built by `$make` (an expression
/// returning a [`Fixture`]), inside a module named `$name`.
#[macro_export]
macro_rules! backup_target_conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::backup_target_conformance!(@check $make;
                put_then_has_and_get,
                put_is_idempotent,
                missing_chunk_is_not_found,
                manifest_round_trip,
                missing_manifest_is_not_found,
                many_chunks_then_flush,
                backup_and_read_back,
                wrong_key_is_refused_before_writing,
            );
        }
    };
    (@check $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                let fixture: $crate::conformance::Fixture = $make;
                $crate::conformance::run($crate::conformance::$check(&*fixture.target));
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use crate::conformance::Fixture;
    use crate::{DiskTarget, MemoryTarget};

    crate::backup_target_conformance!(memory, Fixture::new(MemoryTarget::new()));
    crate::backup_target_conformance!(memory_sequential, Fixture::new(MemoryTarget::sequential()));
    crate::backup_target_conformance!(disk, {
        let dir = tempfile::tempdir().unwrap();
        let target = DiskTarget::create(&dir.path().join("store")).unwrap();
        Fixture::with_guard(target, dir)
    });
}
