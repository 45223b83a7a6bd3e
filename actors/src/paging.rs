//! Walking a newest-first index one page ([`Page`]) at a time.

use std::ops::Bound;

use crate::protocol::page::Page;
use crate::store::{key, Direction, Store, StoreError};

/// Ids of one page of an index whose keys end in the 8-byte id, walking it from the greatest
/// key down (newest first), within the keys that start with `prefix`.
pub fn newest_ids(
    store: &Store,
    index: &'static str,
    prefix: &[u8],
    page: Page,
) -> Result<Vec<u64>, StoreError> {
    // A page far past the end would otherwise walk the whole index to find nothing.
    if prefix.is_empty() && page.offset() >= store.len(index)? {
        return Ok(Vec::new());
    }
    let (start, end) = key::prefix_range(prefix);
    let upper = match &end {
        Some(e) => Bound::Excluded(e.as_slice()),
        None => Bound::Unbounded,
    };
    let mut skip = page.offset();
    let mut ids = Vec::with_capacity(page.size as usize);
    store.visit(
        index,
        (Bound::Included(start.as_slice()), upper),
        Direction::Reverse,
        |k, _| {
            if skip > 0 {
                skip -= 1;
                return true;
            }
            if let Some(id) = k.len().checked_sub(8).and_then(|at| key::to_u64(&k[at..])) {
                ids.push(id);
            }
            (ids.len() as u64) < page.size
        },
    )?;
    Ok(ids)
}
