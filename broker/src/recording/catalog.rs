//! Finding, reading and verifying sealed recordings on disk: shared by the `recordings`,
//! `replay` and `transcript` commands and by `latch recordings verify`.

use recorder::cast::Recording;
use recorder::manifest::Manifest;
use russh::keys::ssh_key::PublicKey;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A sealed recording: its manifest and where its files are.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manifest: Manifest,
    pub manifest_path: PathBuf,
}

impl Entry {
    pub fn name(&self) -> String {
        self.manifest.name().as_str().to_string()
    }

    pub fn cast_path(&self) -> Option<PathBuf> {
        let dir = self.manifest_path.parent()?;
        self.manifest.cast.as_ref().map(|c| dir.join(&c.file))
    }

    pub fn signature_path(&self) -> PathBuf {
        let mut p = self.manifest_path.as_os_str().to_owned();
        p.push(".sig");
        PathBuf::from(p)
    }

    /// Read and parse the cast (None for metadata-only recordings).
    pub fn read_cast(&self) -> Result<Option<Recording>, String> {
        let Some(path) = self.cast_path() else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        recorder::cast::parse(&text)
            .map(Some)
            .map_err(|e| format!("{} is not a readable recording: {e}", path.display()))
    }
}

/// Every manifest file in `dir`, in name order.
pub fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    files.sort();
    files
}

/// Every sealed recording in `dir`, oldest first. Unreadable manifests are skipped with a
/// log line here; `latch recordings verify` reports them as failures.
pub fn list(dir: &Path) -> Vec<Entry> {
    let mut out: Vec<Entry> = manifest_files(dir)
        .into_iter()
        .filter_map(|p| {
            let bytes = std::fs::read(&p).ok()?;
            match Manifest::from_bytes(&bytes) {
                Ok(manifest) => Some(Entry { manifest, manifest_path: p }),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "unreadable recording manifest");
                    None
                }
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.manifest
            .started_at
            .cmp(&b.manifest.started_at)
            .then_with(|| a.manifest.channel.cmp(&b.manifest.channel))
    });
    out
}

/// `s17` (the session's first terminal recording, else its first) or `s17-c1` (one channel).
pub fn find(dir: &Path, which: &str) -> Result<Entry, String> {
    let all = list(dir);
    if let Some(e) = all.iter().find(|e| e.name() == which) {
        return Ok(e.clone());
    }
    let of_session: Vec<&Entry> = all.iter().filter(|e| e.manifest.session == which).collect();
    of_session
        .iter()
        .find(|e| e.manifest.cast.is_some())
        .or_else(|| of_session.first())
        .map(|e| (*e).clone())
        .ok_or_else(|| format!("no sealed recording {which}; run 'recordings' to see them (ids look like s17 or s17-c1)"))
}

/// Verify one recording offline: the signature over the manifest with the audit key, and
/// the cast's SHA-256 and length against the manifest.
pub fn verify(entry_manifest: &Path, key: &PublicKey) -> Result<Manifest, String> {
    let bytes = std::fs::read(entry_manifest).map_err(|e| format!("cannot read: {e}"))?;
    let mut sig_path = entry_manifest.as_os_str().to_owned();
    sig_path.push(".sig");
    let sig = std::fs::read_to_string(PathBuf::from(&sig_path)).map_err(|e| {
        format!(
            "cannot read its signature {}: {e}",
            PathBuf::from(&sig_path).display()
        )
    })?;
    let verified = recorder::seal::verify_manifest(&bytes, &sig, key).map_err(|e| e.to_string())?;
    let cast_ref = match &verified.manifest().cast {
        None => None,
        Some(c) => {
            let path = entry_manifest
                .parent()
                .unwrap_or(Path::new("."))
                .join(&c.file);
            Some(
                hash_cast(&path, &c.file)
                    .map_err(|e| format!("cannot read its cast {}: {e}", path.display()))?,
            )
        }
    };
    verified
        .check_cast(cast_ref.as_ref())
        .map_err(|e| e.to_string())?;
    Ok(verified.into_manifest())
}

/// What the event log says was sealed: recording name -> SHA-256 of its manifest, minus
/// recordings the log says were deleted. Lines that do not parse are skipped (`latch audit
/// verify` is the check for the log itself).
pub fn sealed_in_log(log: &Path) -> std::collections::BTreeMap<String, String> {
    use std::io::BufRead;
    let mut sealed = std::collections::BTreeMap::new();
    let Ok(f) = std::fs::File::open(log) else {
        return sealed;
    };
    for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let kind = v.pointer("/event/type").and_then(|t| t.as_str());
        let name = v.pointer("/event/data/recording").and_then(|t| t.as_str());
        match (kind, name) {
            (Some("recording_sealed"), Some(name)) => {
                let sha = v
                    .pointer("/event/data/manifest_sha256")
                    .and_then(|t| t.as_str())
                    .unwrap_or("");
                sealed.insert(name.to_string(), sha.to_string());
            }
            (Some("recording_deleted"), Some(name)) => {
                sealed.remove(name);
            }
            _ => {}
        }
    }
    sealed
}

/// Hash a cast file as its manifest records it, streaming (casts can be large).
pub fn hash_cast(path: &Path, file_name: &str) -> std::io::Result<recorder::manifest::CastRef> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = recorder::manifest::CastHasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish(file_name))
}
