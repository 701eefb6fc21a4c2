//! List windows: offset pages for the catalog, keyset cursors for histories.
//!
//! A cursor is the id of the last row of the previous page; histories are newest first, so the
//! next page holds rows with a smaller id. The HTTP layer makes it opaque.

/// A keyset window: rows with id `< before` (all rows when `None`), newest first, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorPage {
    pub before: Option<i64>,
    pub limit: u32,
}

impl CursorPage {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 100;
}

/// One window of results; `next` is the cursor of the following page, `None` on the last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice<T> {
    pub items: Vec<T>,
    pub next: Option<i64>,
}

impl<T> Slice<T> {
    /// Builds a slice from up to `limit + 1` rows fetched newest first: the extra row, if
    /// present, only proves there is a next page.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, id_of: impl Fn(&T) -> i64) -> Self {
        let limit = limit as usize;
        if rows.len() > limit {
            rows.truncate(limit);
            let next = rows.last().map(&id_of);
            Self { items: rows, next }
        } else {
            Self {
                items: rows,
                next: None,
            }
        }
    }
}

/// An offset page: 1-based `page` of `size` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPage {
    pub page: u32,
    pub size: u32,
}

impl OffsetPage {
    pub fn offset(&self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.size)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total_items: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overfetch_sets_the_next_cursor_only_when_more_rows_exist() {
        let s = Slice::from_overfetch(vec![9, 8, 7], 2, |x| *x);
        assert_eq!((s.items, s.next), (vec![9, 8], Some(8)));
        let last = Slice::from_overfetch(vec![9, 8], 2, |x| *x);
        assert_eq!(last.next, None);
    }
}
