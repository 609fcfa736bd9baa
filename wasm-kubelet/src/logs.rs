//! Container log files, in the CRI log format that kubelets and log shippers already read:
//! one entry per line, `<RFC3339Nano time> <stdout|stderr> <F|P> <content>`, where `P` marks
//! a partial line that the next entry of the same stream continues.
//!
//! Each run of a container writes its own file (`<container>/<restartCount>.log` in the pod's
//! directory), so `kubectl logs --previous` reads the run before, and a restarted agent finds
//! every file where it left it.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A log line may be at most this long before it is written as partial entries; a module that
/// never prints a newline cannot make the agent buffer without end.
const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The log of one container run. Writes from both streams are serialised; each stream keeps
/// its own unfinished line so that interleaved output does not tear lines apart.
#[derive(Clone)]
pub struct LogWriter {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    file: File,
    pending: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn create(path: &Path) -> std::io::Result<LogWriter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogWriter {
            inner: Arc::new(Mutex::new(Inner {
                file,
                pending: [Vec::new(), Vec::new()],
            })),
        })
    }

    pub fn write(&self, stream: Stream, mut bytes: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let i = stream as usize;
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(n) => {
                    inner.pending[i].extend_from_slice(&bytes[..n]);
                    let line = std::mem::take(&mut inner.pending[i]);
                    inner.entry(stream, &line, false);
                    bytes = &bytes[n + 1..];
                }
                None => {
                    inner.pending[i].extend_from_slice(bytes);
                    bytes = &[];
                }
            }
            while inner.pending[i].len() >= MAX_LINE {
                let rest = inner.pending[i].split_off(MAX_LINE);
                let part = std::mem::replace(&mut inner.pending[i], rest);
                inner.entry(stream, &part, true);
            }
        }
    }

    /// Writes out unfinished lines (as partial entries), e.g. when the container exits.
    pub fn flush(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for stream in [Stream::Stdout, Stream::Stderr] {
            let part = std::mem::take(&mut inner.pending[stream as usize]);
            if !part.is_empty() {
                inner.entry(stream, &part, true);
            }
        }
    }
}

impl Inner {
    fn entry(&mut self, stream: Stream, content: &[u8], partial: bool) {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let tag = if partial { "P" } else { "F" };
        let mut line = Vec::with_capacity(content.len() + 48);
        line.extend_from_slice(format!("{time} {} {tag} ", stream.as_str()).as_bytes());
        line.extend_from_slice(content);
        line.push(b'\n');
        // A full disk loses log lines, never the container: there is no one to report to.
        if let Err(e) = self.file.write_all(&line) {
            tracing::warn!(error = %e, "cannot write a container log line");
        }
    }
}

/// One entry of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: chrono::DateTime<chrono::Utc>,
    pub stream: Stream,
    pub partial: bool,
    pub content: String,
}

impl Entry {
    pub fn parse(line: &str) -> Option<Entry> {
        let mut parts = line.splitn(4, ' ');
        let time = chrono::DateTime::parse_from_rfc3339(parts.next()?)
            .ok()?
            .with_timezone(&chrono::Utc);
        let stream = match parts.next()? {
            "stdout" => Stream::Stdout,
            "stderr" => Stream::Stderr,
            _ => return None,
        };
        let partial = match parts.next()? {
            "P" => true,
            "F" => false,
            _ => return None,
        };
        let content = parts.next().unwrap_or_default().to_owned();
        Some(Entry {
            time,
            stream,
            partial,
            content,
        })
    }
}

/// Where a container run's log lives in its pod's directory.
pub fn path(pod_dir: &Path, container: &str, restart_count: i32) -> PathBuf {
    pod_dir.join(container).join(format!("{restart_count}.log"))
}

/// Reads every entry of a log file (lines that do not parse are skipped: a torn last line
/// after a crash must not hide the rest).
pub fn read(path: &Path) -> std::io::Result<Vec<Entry>> {
    let file = File::open(path)?;
    let mut entries = Vec::new();
    for line in BufReader::new(file).lines() {
        if let Some(e) = Entry::parse(&line?) {
            entries.push(e);
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_partials_and_streams_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "app", 0);
        let w = LogWriter::create(&p).unwrap();
        w.write(Stream::Stdout, b"hello\nwor");
        w.write(Stream::Stderr, b"oops\n");
        w.write(Stream::Stdout, b"ld\nlast");
        w.flush();
        let got: Vec<_> = read(&p)
            .unwrap()
            .into_iter()
            .map(|e| (e.stream, e.partial, e.content))
            .collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, false, "hello".to_owned()),
                (Stream::Stderr, false, "oops".to_owned()),
                (Stream::Stdout, false, "world".to_owned()),
                (Stream::Stdout, true, "last".to_owned()),
            ]
        );
    }

    #[test]
    fn endless_lines_are_cut_into_partials() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "app", 1);
        let w = LogWriter::create(&p).unwrap();
        w.write(Stream::Stdout, &vec![b'x'; MAX_LINE * 2 + 5]);
        w.flush();
        let entries = read(&p).unwrap();
        assert_eq!(entries.len(), 3);
        assert!(entries.iter().all(|e| e.partial));
        assert_eq!(entries[2].content.len(), 5);
    }
}
