//! Pagination as the listing brief defines it (`page_num` from 1, `page_size` 1..=100), and
//! walking a newest-first index one page at a time.

use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::store::{key, Direction, Store, StoreError};

pub const DEFAULT_PAGE_SIZE: u64 = 10;
pub const MAX_PAGE_SIZE: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub num: u64,
    pub size: u64,
}

crate::wire_type!(Page);

impl Default for Page {
    fn default() -> Self {
        Self {
            num: 1,
            size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl Page {
    /// Parses the query parameters; each error message names its parameter.
    pub fn parse(page_num: Option<&str>, page_size: Option<&str>) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let num = match page_num.map(str::trim) {
            None => 1,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n >= 1 => n as u64,
                _ => {
                    errors.push(format!(
                        "page_num must be an integer of at least 1, not {s:?}"
                    ));
                    1
                }
            },
        };
        let size = match page_size.map(str::trim) {
            None => DEFAULT_PAGE_SIZE,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=MAX_PAGE_SIZE as i64).contains(&n) => n as u64,
                _ => {
                    errors.push(format!(
                        "page_size must be an integer from 1 to {MAX_PAGE_SIZE}, not {s:?}"
                    ));
                    DEFAULT_PAGE_SIZE
                }
            },
        };
        if errors.is_empty() {
            Ok(Self { num, size })
        } else {
            Err(errors)
        }
    }

    pub fn offset(&self) -> u64 {
        (self.num - 1).saturating_mul(self.size)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(Page::parse(None, None).unwrap(), Page { num: 1, size: 10 });
        assert_eq!(
            Page::parse(Some("3"), Some("100")).unwrap(),
            Page { num: 3, size: 100 }
        );
        let errs = Page::parse(Some("0"), Some("101")).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].contains("page_num") && errs[1].contains("page_size"));
        assert!(Page::parse(Some("x"), None).unwrap_err()[0].contains("page_num"));
        assert!(Page::parse(None, Some("1.5")).unwrap_err()[0].contains("page_size"));
    }
}
