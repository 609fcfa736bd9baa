//! Range lists, at the current revision or at an older one still in history.
//!
//! Kubernetes paginates a list by handing back a continue token and serving every later page
//! as of the first page's revision, so that the pages join into one consistent list even
//! while writes go on. The store keeps only the latest value of each key, so a page at an
//! older revision `r` is the current range with every change made after `r` undone: each
//! event in history carries the key as it was before (`prev`), and the first event after `r`
//! for a key says what the key was at `r` (or that it did not exist yet).
//!
//! Worked example: at revision 10 the range holds `a`, `b`. Then `b` is deleted (11) and `c`
//! created (12). A list at 10 reads the current `a`, `c`; the undo map from history is
//! `{b: Some(b@≤10), c: None}`; merging gives `a`, `b` — the list as it was at 10.

use std::collections::BTreeMap;
use std::ops::Bound;

use redb::ReadTransaction;

use crate::command::KeyValue;
use crate::error::{Result, StoreError};
use crate::state_machine::{KV, StateDb};

/// A range read over all keys that start with `prefix`.
#[derive(Clone, Debug, Default)]
pub struct ListRequest {
    pub prefix: String,
    /// Return only keys after this one (the last key of the previous page).
    pub start_after: Option<String>,
    /// At most this many items; `None` for all.
    pub limit: Option<usize>,
    /// List as of this revision; `None` for the current one.
    pub revision: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResponse {
    pub items: Vec<KeyValue>,
    /// The revision the list is consistent at; later pages must ask for it.
    pub revision: u64,
    /// Whether keys remain after the last item.
    pub more: bool,
}

pub(crate) fn list(txn: &ReadTransaction, req: &ListRequest) -> Result<ListResponse> {
    let revs = StateDb::revisions(txn)?;
    let at = req.revision.unwrap_or(revs.current);
    if at > revs.current {
        return Err(StoreError::FutureRevision {
            requested: at,
            current: revs.current,
        });
    }
    if at < revs.current && at < revs.compacted {
        return Err(StoreError::Compacted {
            requested: at,
            compacted: revs.compacted,
        });
    }
    let in_range = |key: &str| {
        key.starts_with(&req.prefix) && req.start_after.as_deref().is_none_or(|after| key > after)
    };

    // For each key changed after `at`: what it was at `at`.
    let mut undo: BTreeMap<String, Option<KeyValue>> = BTreeMap::new();
    for event in StateDb::history(txn, at, revs.current)? {
        if in_range(&event.kv.key) && !undo.contains_key(&event.kv.key) {
            let before = event.prev.filter(|p| p.mod_revision <= at);
            undo.insert(event.kv.key.clone(), before);
        }
    }

    let limit = req.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let start = match &req.start_after {
        Some(after) if after.as_str() >= req.prefix.as_str() => Bound::Excluded(after.as_str()),
        _ => Bound::Included(req.prefix.as_str()),
    };
    let kv = txn.open_table(KV)?;
    let mut current = kv
        .range::<&str>((start, Bound::Unbounded))?
        .map_while(|item| match item {
            Ok((k, v)) if k.value().starts_with(&req.prefix) => Some(decode(k.value(), v.value())),
            Ok(_) => None,
            Err(e) => Some(Err(e.into())),
        });
    let mut undo = undo.into_iter().peekable();
    let mut next_current = current.next().transpose()?;
    let mut items = Vec::new();
    loop {
        // Merge the two key-ordered streams; an undo entry overrides the current value.
        let item = match (&next_current, undo.peek()) {
            (None, None) => break,
            (Some(cur), Some((ukey, _))) if cur.key == *ukey => {
                next_current = current.next().transpose()?;
                undo.next().and_then(|(_, v)| v)
            }
            (Some(cur), Some((ukey, _))) if *ukey < cur.key => undo.next().and_then(|(_, v)| v),
            (Some(_), _) => std::mem::replace(&mut next_current, current.next().transpose()?),
            (None, Some(_)) => undo.next().and_then(|(_, v)| v),
        };
        if let Some(item) = item {
            if items.len() == limit {
                return Ok(ListResponse {
                    items,
                    revision: at,
                    more: true,
                });
            }
            items.push(item);
        }
    }
    Ok(ListResponse {
        items,
        revision: at,
        more: false,
    })
}

fn decode(key: &str, bytes: &[u8]) -> Result<KeyValue> {
    crate::state_machine::decode_value(key, bytes)
}
