//! Checkpoint objects (through `object_store`): where checkpoints live and how objects are
//! written.
//!
//! A [`Store`] is a local directory (by default `./checkpoints`, see
//! [`crate::config::DEFAULT_CHECKPOINT_BASE`]), `memory://` for tests, a `file://` URL, or an Azure Blob
//! Storage container and prefix (`az://container/prefix`, credentials as described in
//! [`crate::azure`]), an S3 bucket and prefix (`s3://bucket/prefix`) or a Google Cloud
//! Storage bucket and prefix (`gs://bucket/prefix`; settings for both as described in
//! [`crate::cloud`]). It holds checkpoint objects only: sources, blobs included, are read
//! and listed by [`crate::source`].
//!
//! Every write is a whole-object PUT, which is atomic: on a local directory `object_store`
//! writes a temporary file, fsyncs it, renames it into place and fsyncs the directory (we turn
//! that on with `with_fsync`); on an object store a single PUT replaces the object at once. A
//! reader therefore sees the previous or the next version of an object, never a torn one.
//! Leftover temporary files (`name#1`) of a crash are invisible to listings and removed with
//! their checkpoint.
//!
//! Crash tests (with the `test-support` feature) wrap a store with a `FaultPlan` that kills
//! it at its Nth write.
//!
//! # Who can read what is kept (personal data at rest)
//!
//! Chunk files, rejects and manifests hold personal data (NIKs, names). On a local store,
//! every directory datsync creates — the base directory, each sync's checkpoint directory,
//! `rejects/` and `rejects/<sync_id>/` — is made `0700` and every object written is made
//! `0600`, whatever the umask (modes are set explicitly after creation, since a umask can only
//! take bits away). A base directory that already exists keeps its mode: it was chosen by
//! someone. `object_store` writes a temporary file and renames it into place; the file is
//! `0600` once renamed, and before that it is inside a `0700` directory, so no other user can
//! reach it at any moment. On Azure Blob Storage the equivalent is the container's access
//! policy: datsync creates a missing checkpoint container private (no public access level),
//! and access is granted only through the account's keys, SAS or RBAC. An S3 or Google
//! Cloud Storage bucket must exist (datsync never creates one): its access is the bucket's
//! policy and IAM, which should grant the checkpoint prefix to datsync's identity alone.

mod faults;
mod location;
mod rejects_dir;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

#[cfg(feature = "test-support")]
pub use faults::{CrashPoint, FaultPlan};
pub use location::{
    LocationError, ObjectKey, ObjectKind, REJECTS_DIR, StoreLocation, chunk_file_name,
    parse_chunk_file_name,
};

use crate::azure::{AzureAccount, AzureConfigError};
use crate::cloud::{Cloud, CloudConfigError, CloudSettings};
use crate::model::SyncId;
use faults::{Faults, Verdict};

/// Objects deleted at once when a checkpoint directory is removed.
const DELETE_CONCURRENCY: usize = 16;

/// An error of the checkpoint store; it names the object or location.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The location string is not usable.
    #[error(transparent)]
    Location(#[from] LocationError),
    /// Azure settings are missing or unusable.
    #[error("{location}: {source}")]
    Azure {
        /// The location or blob.
        location: String,
        /// What is wrong.
        source: AzureConfigError,
    },
    /// S3 or Google Cloud Storage settings are missing or unusable.
    #[error("{location}: {source}")]
    Cloud {
        /// The location.
        location: String,
        /// What is wrong.
        source: CloudConfigError,
    },
    /// The local checkpoint directory cannot be created or opened.
    #[error("cannot use checkpoint directory {path}: {source}; check that it is writable")]
    LocalDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An object operation failed.
    #[error("checkpoint storage: cannot {op} {object}: {source}")]
    Object {
        /// What was attempted (`read`, `write`, `delete`, `list`).
        op: &'static str,
        /// The object, as a full path or URL.
        object: String,
        /// The underlying error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An injected crash (crash tests only).
    #[error("injected crash while trying to {op} {object}")]
    Injected {
        /// What was attempted.
        op: &'static str,
        /// The object.
        object: String,
    },
}

/// One object found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: ObjectKey,
    /// What it is.
    pub kind: ObjectKind,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: DateTime<Utc>,
}

/// Where checkpoints are kept. Cheap to clone; clones share the objects.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    location: StoreLocation,
    /// The canonical base directory of a local store.
    local_root: Option<PathBuf>,
    /// The account and container of an `az://` store.
    azure: Option<(AzureAccount, String)>,
    /// Said after an error of the service when no S3 or GCS credentials are configured.
    hint: Option<&'static str>,
    faults: Faults,
}

impl Store {
    /// Opens a location: a directory path or a URL (see [`StoreLocation::parse`]). A local
    /// directory is created if missing.
    pub fn open(location: &str) -> Result<Self, StoreError> {
        Self::open_location(&StoreLocation::parse(location)?)
    }

    /// Opens a location for reading only: `None` for a local directory that does not exist
    /// (nothing is created), so that `status` and `gc` leave no empty directory behind.
    pub fn open_existing(location: &str) -> Result<Option<Self>, StoreError> {
        let parsed = StoreLocation::parse(location)?;
        if let StoreLocation::Local(dir) = &parsed
            && !dir.exists()
        {
            return Ok(None);
        }
        Self::open_location(&parsed).map(Some)
    }

    /// A new, empty in-memory store.
    pub fn memory() -> Self {
        Self {
            inner: Arc::new(InMemory::new()),
            location: StoreLocation::Memory,
            local_root: None,
            azure: None,
            hint: None,
            faults: Faults::default(),
        }
    }

    /// Opens a location with an explicit Azure account for `az://` (the other kinds ignore it).
    pub fn open_with(location: &str, account: &AzureAccount) -> Result<Self, StoreError> {
        match StoreLocation::parse(location)? {
            StoreLocation::Azure { container, prefix } => Self::azure(&container, &prefix, account),
            other => Self::open_location(&other),
        }
    }

    /// Opens a location with explicit S3 or Google Cloud Storage settings for `s3://` or
    /// `gs://` (of the settings' cloud; the other kinds ignore them).
    pub fn open_in(location: &str, settings: &CloudSettings) -> Result<Self, StoreError> {
        let parsed = StoreLocation::parse(location)?;
        match &parsed {
            StoreLocation::S3 { bucket, prefix } | StoreLocation::Gcs { bucket, prefix }
                if bucket_cloud(&parsed) == Some(settings.cloud()) =>
            {
                Self::bucket(&parsed, bucket, prefix, settings)
            }
            other => Self::open_location(other),
        }
    }

    /// Opens a parsed location; `az://` takes its account from the environment, `s3://` and
    /// `gs://` their settings.
    pub fn open_location(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Memory => Ok(Self::memory()),
            StoreLocation::Local(dir) => Self::local(dir),
            StoreLocation::Azure { container, prefix } => {
                let account = env_account(&location.to_string())?;
                Self::azure(container, prefix, &account)
            }
            StoreLocation::S3 { bucket, prefix } => {
                let settings = CloudSettings::from_env(Cloud::S3);
                Self::bucket(location, bucket, prefix, &settings)
            }
            StoreLocation::Gcs { bucket, prefix } => {
                let settings = CloudSettings::from_env(Cloud::Gcs);
                Self::bucket(location, bucket, prefix, &settings)
            }
        }
    }

    fn bucket(
        location: &StoreLocation,
        bucket: &str,
        prefix: &str,
        settings: &CloudSettings,
    ) -> Result<Self, StoreError> {
        let client = settings
            .bucket(bucket)
            .map_err(|source| StoreError::Cloud {
                location: location.to_string(),
                source,
            })?;
        let inner = under_prefix(client, prefix);
        Ok(Self {
            inner,
            location: location.clone(),
            local_root: None,
            azure: None,
            hint: settings.no_credentials_hint(),
            faults: Faults::default(),
        })
    }

    fn azure(container: &str, prefix: &str, account: &AzureAccount) -> Result<Self, StoreError> {
        let location = StoreLocation::Azure {
            container: container.to_owned(),
            prefix: prefix.to_owned(),
        };
        let client = account
            .container(container)
            .map_err(|source| StoreError::Azure {
                location: location.to_string(),
                source,
            })?;
        let inner = under_prefix(client, prefix);
        Ok(Self {
            inner,
            location,
            local_root: None,
            azure: Some((account.clone(), container.to_owned())),
            hint: None,
            faults: Faults::default(),
        })
    }

    fn local(dir: &std::path::Path) -> Result<Self, StoreError> {
        let fail = |source| StoreError::LocalDir {
            path: dir.to_path_buf(),
            source,
        };
        private_dirs(dir).map_err(fail)?;
        let root = std::fs::canonicalize(dir).map_err(fail)?;
        let fs = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| fail(std::io::Error::other(e.to_string())))?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(Self {
            inner: Arc::new(fs),
            location: StoreLocation::Local(root.clone()),
            local_root: Some(root),
            azure: None,
            hint: None,
            faults: Faults::default(),
        })
    }

    /// Creates the container of an `az://` store when it is missing (nothing to do for the
    /// other kinds). A failure is only logged: the first write then says what is wrong.
    pub async fn ensure_container(&self) {
        if let Some((account, container)) = &self.azure
            && let Err(e) = account.create_container(container).await
        {
            tracing::warn!(location = %self.location, error = %e, "cannot make sure the checkpoint container exists");
        }
    }

    /// The location, for messages.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The location as a string that [`Self::open`] opens again from another process and
    /// directory (an absolute directory, a URL); `None` for `memory://`.
    pub fn reopenable_location(&self) -> Option<String> {
        match &self.location {
            StoreLocation::Memory => None,
            location => Some(location.to_string()),
        }
    }

    /// The full name of an object, for messages: a file path or a URL.
    pub fn describe(&self, key: &ObjectKey) -> String {
        match &self.local_root {
            Some(root) => root.join(key.as_str()).display().to_string(),
            None => format!("{}{}", self.location, key.as_str()),
        }
    }

    /// The full name of a sync's checkpoint directory, for messages.
    pub fn describe_sync(&self, sync: &SyncId) -> String {
        match &self.local_root {
            Some(root) => root.join(sync.as_str()).display().to_string(),
            None => format!("{}{sync}/", self.location),
        }
    }

    /// The same objects, with a crash planned (crash tests).
    #[cfg(feature = "test-support")]
    #[must_use]
    pub fn with_faults(&self, plan: Arc<FaultPlan>) -> Self {
        Self {
            faults: Faults::planned(Some(plan)),
            ..self.clone()
        }
    }

    /// The same objects without any planned crash: what a restarted process sees.
    #[cfg(feature = "test-support")]
    #[must_use]
    pub fn without_faults(&self) -> Self {
        Self {
            faults: Faults::planned(None),
            ..self.clone()
        }
    }

    /// Writes a whole object atomically (replacing any previous version).
    pub async fn put(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), StoreError> {
        let verdict = self.write_verdict();
        match verdict {
            Verdict::Dead => return Err(self.injected("write", key)),
            Verdict::CrashBefore => {
                self.leave_torn_temp_file(key, &bytes);
                return Err(self.injected("write", key));
            }
            Verdict::Proceed | Verdict::CrashAfter => {}
        }
        let path = self.local_root.as_ref().map(|root| root.join(key.as_str()));
        if let Some(parent) = path.as_deref().and_then(std::path::Path::parent) {
            private_dirs(parent).map_err(|e| self.io_error("write", key, e))?;
        }
        self.inner
            .put(&key.0, PutPayload::from(bytes))
            .await
            .map_err(|e| self.object_error("write", key, e))?;
        if let Some(path) = &path {
            private_file(path).map_err(|e| self.io_error("write", key, e))?;
        }
        if verdict == Verdict::CrashAfter {
            return Err(self.injected("write", key));
        }
        Ok(())
    }

    /// Reads a whole object; `None` when it does not exist.
    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Bytes>, StoreError> {
        if self.read_verdict() == Verdict::Dead {
            return Err(self.injected("read", key));
        }
        let result = match self.inner.get(&key.0).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.object_error("read", key, e)),
        };
        let bytes = result
            .bytes()
            .await
            .map_err(|e| self.object_error("read", key, e))?;
        Ok(Some(bytes))
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        if self.read_verdict() == Verdict::Dead {
            return Err(self.injected("read", key));
        }
        match self.inner.head(&key.0).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.object_error("read", key, e)),
        }
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let verdict = self.write_verdict();
        if matches!(verdict, Verdict::Dead | Verdict::CrashBefore) {
            return Err(self.injected("delete", key));
        }
        match self.inner.delete(&key.0).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.object_error("delete", key, e)),
        }
        if verdict == Verdict::CrashAfter {
            return Err(self.injected("delete", key));
        }
        Ok(())
    }

    /// Every object of a sync's checkpoint directory, sorted by key.
    pub async fn list_sync(&self, sync: &SyncId) -> Result<Vec<ObjectInfo>, StoreError> {
        if self.read_verdict() == Verdict::Dead {
            return Err(self.injected_at("list", self.describe_sync(sync)));
        }
        let prefix = Path::from(sync.as_str());
        let metas: Vec<_> = self
            .inner
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.list_error(&self.describe_sync(sync), e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .map(|m| {
                let key = ObjectKey(m.location);
                ObjectInfo {
                    kind: key.kind(),
                    key,
                    size: m.size,
                    last_modified: m.last_modified,
                }
            })
            .collect();
        out.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        Ok(out)
    }

    /// The syncs that have a checkpoint directory (names that are not sync ids are ignored).
    pub async fn list_syncs(&self) -> Result<Vec<SyncId>, StoreError> {
        if self.read_verdict() == Verdict::Dead {
            return Err(self.injected_at("list", self.location.to_string()));
        }
        let listing = self
            .inner
            .list_with_delimiter(None)
            .await
            .map_err(|e| self.list_error(&self.location.to_string(), e))?;
        let mut ids: Vec<SyncId> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(|n| SyncId::parse(n).ok()))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Removes a sync's whole checkpoint directory: every object but the manifest first, the
    /// manifest last (so a crash half-way leaves a directory that is still recognised), then,
    /// on a local store, the directory itself with any leftover temporary files.
    pub async fn delete_sync(&self, sync: &SyncId) -> Result<(), StoreError> {
        let objects = self.list_sync(sync).await?;
        let (manifests, others): (Vec<_>, Vec<_>) = objects
            .into_iter()
            .partition(|o| o.kind == ObjectKind::Manifest);
        futures::stream::iter(others.into_iter().map(|o| o.key))
            .map(|key| async move { self.delete(&key).await })
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        for object in &manifests {
            self.delete(&object.key).await?;
        }
        if let Some(root) = &self.local_root {
            let dir = root.join(sync.as_str());
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::Object {
                        op: "delete",
                        object: dir.display().to_string(),
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(())
    }

    fn write_verdict(&self) -> Verdict {
        self.faults.on_write()
    }

    fn read_verdict(&self) -> Verdict {
        self.faults.on_read()
    }

    /// What a crash in the middle of writing leaves on a local disk: a partial temp file.
    fn leave_torn_temp_file(&self, key: &ObjectKey, bytes: &Bytes) {
        if let Some(root) = &self.local_root {
            let path = root.join(format!("{}#99", key.as_str()));
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::write(&path, &bytes[..bytes.len() / 2]);
        }
    }

    fn injected(&self, op: &'static str, key: &ObjectKey) -> StoreError {
        self.injected_at(op, self.describe(key))
    }

    fn injected_at(&self, op: &'static str, object: String) -> StoreError {
        let _ = self;
        StoreError::Injected { op, object }
    }

    fn object_error(
        &self,
        op: &'static str,
        key: &ObjectKey,
        e: object_store::Error,
    ) -> StoreError {
        StoreError::Object {
            op,
            object: self.describe(key),
            source: self.service_error(e),
        }
    }

    /// A service's error, followed by the hint about credentials when there is one.
    fn service_error(&self, e: object_store::Error) -> Box<dyn std::error::Error + Send + Sync> {
        match self.hint {
            Some(_) => Box::new(crate::source::with_hint(e, self.hint)),
            None => Box::new(e),
        }
    }

    fn io_error(&self, op: &'static str, key: &ObjectKey, e: std::io::Error) -> StoreError {
        StoreError::Object {
            op,
            object: self.describe(key),
            source: Box::new(e),
        }
    }

    fn list_error(&self, what: &str, e: object_store::Error) -> StoreError {
        StoreError::Object {
            op: "list",
            object: what.to_owned(),
            source: self.service_error(e),
        }
    }
}

/// The mode of every directory datsync creates on a local store.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// The mode of every file datsync writes on a local store.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing ancestors, each `0700` whatever the umask; existing ones are
/// left as they are.
pub fn private_dirs(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        private_dirs(parent)?;
    }
    match std::fs::DirBuilder::new()
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
    {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE)),
        // Created meanwhile by another writer: it did the same.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes a file `0600`.
pub fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
}

/// The cloud of an `s3://` or `gs://` location.
fn bucket_cloud(location: &StoreLocation) -> Option<Cloud> {
    match location {
        StoreLocation::S3 { .. } => Some(Cloud::S3),
        StoreLocation::Gcs { .. } => Some(Cloud::Gcs),
        _ => None,
    }
}

/// The Azure account of the environment, or an error naming `location` and the settings.
fn env_account(location: &str) -> Result<AzureAccount, StoreError> {
    AzureAccount::required_from_env().map_err(|source| StoreError::Azure {
        location: location.to_owned(),
        source,
    })
}

/// A bucket's or container's client seen from `prefix` (the whole of it when empty).
fn under_prefix(client: Arc<dyn ObjectStore>, prefix: &str) -> Arc<dyn ObjectStore> {
    if prefix.is_empty() {
        client
    } else {
        Arc::new(PrefixStore::new(client, prefix))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
