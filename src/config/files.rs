//! Files the settings name: mounted secrets and CA bundles, read with a size cap and refused when
//! not a regular file; messages never quote the content.

use rustls::pki_types::CertificateDer;
use std::path::Path;

/// Largest secret file read (a client secret is tens of bytes).
const MAX_SECRET_FILE: u64 = 64 * 1024;
/// Largest `ca_file` read (Mozilla's whole root bundle is about 220 KB).
const MAX_CA_FILE: u64 = 1024 * 1024;

/// Reads a regular file of at most `limit` bytes. A FIFO, a device (`/dev/zero`) or a directory
/// is refused instead of blocking start-up or a reload, or filling memory.
fn read_small_file(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            format!("cannot read: permission denied{}", reader_identity())
        }
        kind => format!("cannot read: {kind}"),
    };
    let metadata = std::fs::metadata(path).map_err(cannot)?;
    if !metadata.is_file() {
        return Err("not a regular file".to_owned());
    }
    if metadata.len() > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(bytes)
}

/// ` (this process runs as uid U, gid G: …)`, for a file it may not read: in the container that
/// is uid 65532, and a root-owned 0600 file on the host is what it meets. Empty where
/// `/proc/self/status` is not there to say.
fn reader_identity() -> String {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return String::new();
    };
    // `Uid:\treal\teffective\tsaved\tfs`: files are opened with the effective ids.
    let effective = |field: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    match (effective("Uid:"), effective("Gid:")) {
        (Some(uid), Some(gid)) => format!(
            " (this process runs as uid {uid}, gid {gid}: the file must be readable by one of them, \
             and its directories searchable)"
        ),
        _ => String::new(),
    }
}

/// Reads a mounted secret; one trailing newline (as `echo` and editors leave) is not part of it.
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    let mut text = String::from_utf8(read_small_file(path, MAX_SECRET_FILE)?)
        .map_err(|_| "cannot read: not UTF-8 text".to_owned())?;
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    Ok(text)
}

/// A PEM file of `[server.tls]` (a certificate chain or a private key), with the same checks as
/// every file the settings name: a regular file of at most 1 MiB.
pub fn read_tls_pem(path: &Path) -> Result<Vec<u8>, String> {
    read_small_file(path, MAX_CA_FILE)
}

/// A PEM bundle of trust anchors as bytes (`state.redis.ca_file`, for a client that takes PEM):
/// the same checks as [`CaCertificates::read`].
pub(super) fn read_ca_pem(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = read_small_file(path, MAX_CA_FILE)?;
    CaCertificates::parse(&bytes)?;
    Ok(bytes)
}

/// Extra trust anchors for a provider's upstream client, from `ca_file`: parsed and checked once,
/// when the configuration is validated, so building the client cannot fail on them later.
/// `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct CaCertificates {
    /// DER of each certificate, in file order: what the client's root store gets, and what
    /// [`PartialEq`] compares (a reload can tell whether the file's content changed).
    certificates: Vec<CertificateDer<'static>>,
}

impl CaCertificates {
    /// Reads a PEM bundle: every `CERTIFICATE` block, each one usable as a trust anchor, at least
    /// one. Other blocks (a private key, say) are ignored. Messages never quote the file.
    pub(super) fn read(path: &Path) -> Result<Self, String> {
        Self::parse(&read_small_file(path, MAX_CA_FILE)?)
    }

    fn parse(bytes: &[u8]) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject;
        let mut ca = Self::default();
        for (i, block) in CertificateDer::pem_slice_iter(bytes).enumerate() {
            let n = i + 1;
            let der = block.map_err(|_| format!("certificate {n} is not valid PEM"))?;
            // The check the client's root store makes when it is built (webpki trust-anchor
            // parsing), made here so that building it cannot fail.
            rustls::RootCertStore::empty()
                .add(der.clone())
                .map_err(|_| format!("certificate {n} is not a usable X.509 certificate"))?;
            ca.certificates.push(der);
        }
        if ca.certificates.is_empty() {
            return Err(
                "no certificate in the file (expected PEM `BEGIN CERTIFICATE` blocks)".to_owned(),
            );
        }
        Ok(ca)
    }

    /// The certificates (DER), in file order.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certificates
    }

    /// How many certificates there are.
    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    /// True without a `ca_file`.
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }
}

impl PartialEq for CaCertificates {
    fn eq(&self, other: &Self) -> bool {
        self.certificates == other.certificates
    }
}

impl Eq for CaCertificates {}

impl std::fmt::Debug for CaCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CaCertificates({} certificates)",
            self.certificates.len()
        )
    }
}
