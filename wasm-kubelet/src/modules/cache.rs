//! The node's module cache: content-addressed blobs plus a small index from reference to
//! digest.
//!
//! Layout under the cache directory:
//! - `sha256/<hex>`: a module, named by the SHA-256 of its bytes. A file appears there only
//!   by `rename` after its hash was checked, so a blob that exists is whole and correct.
//! - `index/<hex of sha256(reference key)>`: the digest a reference last resolved to, so
//!   `IfNotPresent` and `Never` can answer without the network.
//! - `tmp/`: downloads in progress; emptied when the cache is opened (left by a crash).

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::Fetched;
use super::error::Error;

#[derive(Debug)]
pub(crate) struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Opens (creating) the cache under `root` and clears interrupted downloads.
    pub(crate) fn open(root: PathBuf) -> Result<Cache, Error> {
        for dir in ["sha256", "index", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(|e| Error::cache(&path, e))?;
        }
        let tmp = root.join("tmp");
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Cache { root })
    }

    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.root.join("sha256").join(hex)
    }

    /// The cached module with `digest`, if it is there.
    pub(crate) async fn blob(&self, digest: &str) -> Option<Fetched> {
        let path = self.blob_path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Some(Fetched {
                digest: digest.to_string(),
                path,
            }),
            _ => None,
        }
    }

    fn index_path(&self, key: &str) -> PathBuf {
        self.root
            .join("index")
            .join(hex::encode(Sha256::digest(key.as_bytes())))
    }

    /// The cached module `key` last resolved to, if both the index entry and the blob exist.
    pub(crate) async fn lookup(&self, key: &str) -> Option<Fetched> {
        let text = tokio::fs::read_to_string(self.index_path(key)).await.ok()?;
        let mut lines = text.lines();
        let digest = lines.next()?;
        // The key is stored too, so a hash collision of keys can never alias two references.
        if lines.next()? != key || !super::reference::is_sha256_digest(digest) {
            return None;
        }
        self.blob(digest).await
    }

    /// Remembers that `key` resolves to `digest` (atomically: temp file, then rename).
    pub(crate) async fn record(&self, key: &str, digest: &str) -> Result<(), Error> {
        let path = self.index_path(key);
        let tmp = self.temp_path();
        let write = async {
            tokio::fs::write(&tmp, format!("{digest}\n{key}\n")).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = write.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Error::cache(&path, e));
        }
        Ok(())
    }

    fn temp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{:016x}.part", rand::random::<u64>()))
    }

    /// Starts writing a new blob whose bytes are hashed as they arrive; `source_ref` names
    /// the module in errors and `limit` bounds its size.
    pub(crate) async fn writer(
        &self,
        source_ref: &str,
        limit: u64,
    ) -> Result<BlobWriter<'_>, Error> {
        let path = self.temp_path();
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| Error::cache(&path, e))?;
        Ok(BlobWriter {
            cache: self,
            temp: TempFile(path),
            file,
            hasher: Sha256::new(),
            written: 0,
            limit,
            source_ref: source_ref.to_string(),
        })
    }
}

/// A temporary file that is removed unless it was renamed into place: a failed or
/// cancelled download never leaves half a file behind.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// A blob being written; see [`Cache::writer`].
pub(crate) struct BlobWriter<'a> {
    cache: &'a Cache,
    temp: TempFile,
    file: tokio::fs::File,
    hasher: Sha256,
    written: u64,
    limit: u64,
    source_ref: String,
}

impl BlobWriter<'_> {
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.written += bytes.len() as u64;
        if self.written > self.limit {
            return Err(Error::TooLarge {
                source_ref: self.source_ref.clone(),
                limit: self.limit,
            });
        }
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| Error::cache(&self.temp.0, e))
    }

    /// Checks the hash against `expected` (when given) and moves the blob into place.
    pub(crate) async fn finish(mut self, expected: Option<&str>) -> Result<Fetched, Error> {
        let actual = format!("sha256:{}", hex::encode(self.hasher.finalize_reset()));
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(Error::DigestMismatch {
                expected: expected.to_string(),
                actual,
            });
        }
        let temp = &self.temp.0;
        self.file.flush().await.map_err(|e| Error::cache(temp, e))?;
        self.file
            .sync_all()
            .await
            .map_err(|e| Error::cache(temp, e))?;
        let path = self.cache.blob_path(&actual);
        // Another fetch may have put the same content there meanwhile: same bytes, so the
        // rename over it is harmless.
        tokio::fs::rename(temp, &path)
            .await
            .map_err(|e| Error::cache(&path, e))?;
        self.temp.0 = PathBuf::new();
        Ok(Fetched {
            digest: actual,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    #[tokio::test]
    async fn blobs_are_named_by_content_and_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().to_path_buf()).unwrap();
        let mut w = cache.writer("test", 1024).await.unwrap();
        w.write(b"hello ").await.unwrap();
        w.write(b"world").await.unwrap();
        let fetched = w.finish(Some(&sha(b"hello world"))).await.unwrap();
        assert_eq!(fetched.digest, sha(b"hello world"));
        assert_eq!(std::fs::read(&fetched.path).unwrap(), b"hello world");
        assert_eq!(cache.blob(&fetched.digest).await, Some(fetched.clone()));

        assert_eq!(cache.lookup("http://h/x.wasm").await, None);
        cache
            .record("http://h/x.wasm", &fetched.digest)
            .await
            .unwrap();
        assert_eq!(cache.lookup("http://h/x.wasm").await, Some(fetched));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn failed_writes_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().to_path_buf()).unwrap();

        let mut w = cache.writer("test", 1024).await.unwrap();
        w.write(b"abc").await.unwrap();
        let err = w.finish(Some(&sha(b"xyz"))).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "digest mismatch: expected {}, got {}",
                sha(b"xyz"),
                sha(b"abc")
            )
        );

        let mut w = cache.writer("http://h/big.wasm", 4).await.unwrap();
        let err = w.write(b"too long").await.unwrap_err();
        assert!(
            err.to_string()
                .contains("larger than the node's limit of 4 bytes"),
            "{err}"
        );
        drop(w);

        let w = cache.writer("test", 4).await.unwrap();
        drop(w); // cancelled

        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("sha256"))
                .unwrap()
                .count(),
            0
        );
    }
}
