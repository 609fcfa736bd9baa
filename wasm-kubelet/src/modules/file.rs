//! `file://` modules: already on the node, but hashed and copied into the cache all the same,
//! so the compiled-code cache keys on content and a module edited in place is noticed.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::Fetched;
use super::cache::Cache;
use super::error::Error;

const CHUNK: usize = 256 * 1024;

/// Hashes the file, then copies it into the cache unless that content is already there.
pub(crate) async fn fetch(cache: &Cache, path: &Path, limit: u64) -> Result<Fetched, Error> {
    let digest = hash(path, limit).await?;
    if let Some(cached) = cache.blob(&digest).await {
        return Ok(cached);
    }
    let source_ref = format!("file://{}", path.display());
    let mut file = open(path, limit).await?;
    let mut writer = cache.writer(&source_ref, limit).await?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| read_error(path, e))?;
        if n == 0 {
            break;
        }
        writer.write(&buf[..n]).await?;
    }
    // The file may have changed between the two reads; what was copied is what counts.
    writer.finish(None).await
}

async fn hash(path: &Path, limit: u64) -> Result<String, Error> {
    let mut file = open(path, limit).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(|e| read_error(path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > limit {
            return Err(too_large(path, limit));
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

async fn open(path: &Path, limit: u64) -> Result<tokio::fs::File, Error> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| read_error(path, e))?;
    let meta = file.metadata().await.map_err(|e| read_error(path, e))?;
    if !meta.is_file() {
        return Err(Error::FileRead {
            path: path.to_path_buf(),
            cause: Arc::new(std::io::Error::other("not a regular file")),
        });
    }
    if meta.len() > limit {
        return Err(too_large(path, limit));
    }
    Ok(file)
}

fn too_large(path: &Path, limit: u64) -> Error {
    Error::TooLarge {
        source_ref: format!("file://{}", path.display()),
        limit,
    }
}

fn read_error(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::FileMissing {
            path: path.to_path_buf(),
        }
    } else {
        Error::FileRead {
            path: path.to_path_buf(),
            cause: Arc::new(e),
        }
    }
}
