//! Where tokens live between runs: the [`TokenStore`] trait, a JSON file, and memory.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use secrecy::zeroize::Zeroize as _;

use crate::clock::BoxFuture;
use crate::{random, Error, TokenSet};

/// Persistent storage for one [`TokenSet`] (RFC 6819 §5.1.6: keep refresh tokens in storage only the
/// app can read).
///
/// Methods return boxed futures so the trait can be used as `Arc<dyn TokenStore>`; implement it for
/// an OS keychain the same way. Errors go through [`Error::store`].
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The stored set, or `None` when nothing was saved (or it was cleared).
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, Error>>;
    /// Replaces the stored set.
    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), Error>>;
    /// Forgets the stored set; succeeds when there was none.
    fn clear(&self) -> BoxFuture<'_, Result<(), Error>>;
}

/// Keeps the set in memory only: for tests, and for apps that must not write tokens to disk.
#[derive(Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<Option<TokenSet>>,
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTokenStore").finish_non_exhaustive()
    }
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that already holds `tokens`.
    pub fn with_tokens(tokens: TokenSet) -> Self {
        Self {
            tokens: Mutex::new(Some(tokens)),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<TokenSet>> {
        // A panic elsewhere while holding the lock cannot leave a half-written Option.
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, Error>> {
        let tokens = self.slot().clone();
        Box::pin(async move { Ok(tokens) })
    }

    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), Error>> {
        *self.slot() = Some(tokens.clone());
        Box::pin(async { Ok(()) })
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        *self.slot() = None;
        Box::pin(async { Ok(()) })
    }
}

/// Stores the set as a JSON file.
///
/// - Writes are atomic: a temporary file in the same directory is written, `fsync`ed and renamed
///   over the target, so a crash leaves either the old or the new file, never half of one.
/// - On Unix the file is created with mode `0600` (and a missing directory with `0700`): the mode is
///   given to `open(2)`, so the tokens are never readable by others, not even for an instant.
/// - On other platforms the file gets the directory's default permissions; put it in the app's
///   per-user data directory.
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    path: PathBuf,
}

impl FileTokenStore {
    /// A store at `path` (e.g. `<app data dir>/kick-tokens.json`). Nothing is touched until used.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TokenStore for FileTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, Error>> {
        let path = self.path.clone();
        Box::pin(blocking(move || load_file(&path)))
    }

    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), Error>> {
        let path = self.path.clone();
        let json = serde_json::to_vec_pretty(tokens).map_err(Error::store);
        Box::pin(async move {
            let json = json?;
            blocking(move || write_atomically(&path, json)).await
        })
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        let path = self.path.clone();
        Box::pin(blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::store(e)),
        }))
    }
}

async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::store(format!("file task failed: {e}")))?
}

fn load_file(path: &Path) -> Result<Option<TokenSet>, Error> {
    let mut bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::store(e)),
    };
    let parsed = serde_json::from_slice(&bytes);
    bytes.zeroize();
    // serde_json's error names a line and column, never the content.
    parsed.map(Some).map_err(Error::store)
}

fn write_atomically(path: &Path, mut json: Vec<u8>) -> Result<(), Error> {
    let result = write_atomically_inner(path, &json);
    json.zeroize();
    result
}

fn write_atomically_inner(path: &Path, json: &[u8]) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::store(format!("{} is not a file path", path.display())))?;
    create_private_dir(&dir).map_err(Error::store)?;

    let mut suffix = [0u8; 8];
    random::fill(&mut suffix)?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{}.{suffix}.tmp", file_name.to_string_lossy()));

    let written = (|| -> std::io::Result<()> {
        let mut file = private_file_options().open(&tmp)?;
        file.write_all(json)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        sync_dir(&dir);
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::store(e));
    }
    Ok(())
}

fn private_file_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    // create_new: never follow a planted file or symlink at the temporary name.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes the rename durable (POSIX needs the directory entry synced too). Best effort: some
/// platforms and file systems cannot open or sync a directory, and the data itself is already synced.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccessToken, RefreshToken};
    use std::time::{Duration, UNIX_EPOCH};

    fn sample(access: &str) -> TokenSet {
        TokenSet {
            access_token: AccessToken::new(access),
            refresh_token: Some(RefreshToken::new("refresh-1")),
            expires_at: UNIX_EPOCH + Duration::from_secs(1_900_000_000),
            scope: Some("user:read".into()),
            token_type: "Bearer".into(),
        }
    }

    #[tokio::test]
    async fn file_store_round_trips_replaces_and_clears() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileTokenStore::new(dir.path().join("nested/tokens.json"));
        assert!(store.load().await.expect("load empty").is_none());

        store.save(&sample("access-1")).await.expect("save");
        store.save(&sample("access-2")).await.expect("save again");
        let loaded = store.load().await.expect("load").expect("present");
        assert_eq!(loaded.access_token.secret(), "access-2");
        assert_eq!(
            loaded.refresh_token.as_ref().map(RefreshToken::secret),
            Some("refresh-1")
        );
        assert_eq!(loaded.expires_at, sample("x").expires_at);

        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("nested"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("tokens.json")]);

        store.clear().await.expect("clear");
        assert!(store.load().await.expect("load cleared").is_none());
        store.clear().await.expect("clearing twice is fine");
    }

    #[tokio::test]
    async fn corrupt_file_is_a_store_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, b"{ not json").expect("write");
        let err = FileTokenStore::new(&path)
            .load()
            .await
            .expect_err("corrupt");
        assert!(matches!(err, Error::Store(_)));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn file_store_creates_the_file_with_mode_0600_even_over_a_world_readable_one() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, b"{}").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");

        let store = FileTokenStore::new(&path);
        store.save(&sample("a")).await.expect("save");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let fresh = dir.path().join("sub/dir/tokens.json");
        FileTokenStore::new(&fresh)
            .save(&sample("a"))
            .await
            .expect("save");
        let mode = std::fs::metadata(&fresh)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("sub/dir"))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode & 0o077, 0, "directory not open to others");
    }

    #[tokio::test]
    async fn memory_store_works_behind_a_dyn_arc() {
        let store: std::sync::Arc<dyn TokenStore> = std::sync::Arc::new(MemoryTokenStore::new());
        assert!(store.load().await.expect("load").is_none());
        store.save(&sample("m")).await.expect("save");
        let loaded = store.load().await.expect("load").expect("present");
        assert_eq!(loaded.access_token.secret(), "m");
        store.clear().await.expect("clear");
        assert!(store.load().await.expect("load").is_none());
    }
}
