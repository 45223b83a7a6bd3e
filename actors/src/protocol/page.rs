//! A page of a list, as the listing brief defines it (`page_num` from 1, `page_size` 1..=100);
//! every list in troupe pages this way.

use serde::{Deserialize, Serialize};

use crate::wire_type;

pub const DEFAULT_PAGE_SIZE: u64 = 10;
pub const MAX_PAGE_SIZE: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub num: u64,
    pub size: u64,
}

wire_type!(Page);

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
