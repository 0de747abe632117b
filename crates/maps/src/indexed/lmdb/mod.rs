//! `lmdb:` tables: `NAME.lmdb`, an LMDB 0.9 data file as Postfix's dict_lmdb.c keeps it
//! (one file, MDB_NOSUBDIR; MDB_NOLOCK, so no `NAME.lmdb-lock` beside it), read and written
//! by our own safe code so that no `unsafe` memory map is needed.
//!
//! The file format (lmdb's mdb.c, data version 1, 64-bit): pages of `psize` bytes (4096 on
//! the machines Postfix runs on, recorded in the file); pages 0 and 1 are meta pages, the
//! one with the larger transaction id is current. Every page starts with a 16-byte header
//! (page number u64, pad u16, flags u16, then lower/upper u16 or an overflow page count
//! u32). Branch and leaf pages hold an array of u16 node offsets after the header; a node
//! is (lo u16, hi u16, flags u16, key size u16, key, data). In a leaf, lo|hi<<16 is the
//! data size and the data follows the key, or (flag F_BIGDATA) the number of the first of
//! its overflow pages does; in a branch, lo|hi<<16|flags<<32 is the child page and the
//! first node's key is ignored. Keys sort as memcmp then length. Numbers are little-endian.
//!
//! [`write`] builds a fresh file bottom-up from the sorted entries in one pass (full leaf
//! pages, then each branch level), with an empty free list, as a file that Debian's
//! liblmdb reads and updates in place; updates here rewrite the whole file the same way.
//!
//! Trust: page numbers, offsets and sizes from the file are checked before use; a bad one
//! gives lmdb's own error text (MDB_PAGE_NOTFOUND, MDB_CORRUPTED) where lmdb itself would
//! crash on a truncated file.

mod write;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::file::{ReadAt, ReadError, strerror};
use super::{Entry, NulForms, text};
use crate::{Map, MapError, Owner};

pub(crate) use write::{check_sizes, write};

const PAGE_HEADER: usize = 16;
const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
const P_META: u16 = 0x08;
const F_BIGDATA: u16 = 0x01;
const MAGIC: u32 = 0xBEEF_C0DE;
const DATA_VERSION: u32 = 1;
const P_INVALID: u64 = u64::MAX;
/// Deeper trees do not fit in any file: a cycle in a corrupt file ends here.
const MAX_DEPTH: usize = 32;

/// lmdb's texts for its own error codes (mdb_strerror()).
const MDB_INVALID: &str = "MDB_INVALID: File is not an LMDB file";
const MDB_VERSION_MISMATCH: &str = "MDB_VERSION_MISMATCH: Database environment version mismatch";
const MDB_PAGE_NOTFOUND: &str = "MDB_PAGE_NOTFOUND: Requested page not found";
const MDB_CORRUPTED: &str = "MDB_CORRUPTED: Located page was wrong type";

/// An open `lmdb:` table.
#[derive(Debug)]
pub struct LmdbMap {
    spec: String,
    tree: Tree,
    forms: NulForms,
}

impl LmdbMap {
    /// Opens `NAME.lmdb`, with Postfix's messages (`open database PATH: ...`).
    pub fn open(name: &str) -> Result<LmdbMap, MapError> {
        Ok(LmdbMap {
            spec: format!("lmdb:{name}"),
            tree: Tree::open(name)?,
            forms: NulForms::both(),
        })
    }
}

impl Map for LmdbMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        self.forms.lookup(key, |stored| self.tree.get(stored))
    }

    /// In key order, as an lmdb cursor walks the table. dict_lmdb.c words a failed
    /// cursor step "error seeking", where a failed lookup is "error reading".
    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        let entries = self.tree.entries().map_err(|err| match err {
            MapError::Retry(text) => match text.strip_prefix("error reading ") {
                Some(rest) => MapError::Retry(format!("error seeking {rest}")),
                None => MapError::Retry(text),
            },
            other @ MapError::Config(_) => other,
        })?;
        Ok(entries
            .iter()
            .map(|(key, value)| (text(key), text(value)))
            .collect())
    }

    fn owner(&self) -> Owner {
        match self.tree.file.uid() {
            Some(0) => Owner::Trusted,
            Some(uid) => Owner::User(uid),
            None => Owner::Unknown,
        }
    }
}

/// Every stored entry of `NAME.lmdb`, in key order, for an update; an empty table when
/// there is no file (`postmap -i` creates it).
pub(crate) fn read_all(name: &str) -> Result<Vec<Entry>, MapError> {
    if !std::path::Path::new(&super::file_path("lmdb", name)).exists() {
        return Ok(Vec::new());
    }
    Tree::open(name)?.entries()
}

/// The main database of an lmdb file, as its current meta page describes it.
#[derive(Debug)]
struct Tree {
    file: ReadAt,
    psize: usize,
    root: u64,
    /// `lmdb:NAME`, for messages.
    spec: String,
    /// Branch pages read so far: every lookup passes through them, and a table of a million
    /// entries has a few hundred. Bounded by [`MAX_CACHED`].
    branches: Mutex<HashMap<u64, Arc<Page>>>,
}

/// The most branch pages kept in memory (16 MiB of 4 KiB pages).
const MAX_CACHED: usize = 4096;

/// What a walk over the whole tree may still visit: pages, and bytes of keys and data.
struct WalkBudget {
    pages: u64,
    bytes: u64,
}

/// One branch or leaf page, checked to hold `count` node offsets inside it.
#[derive(Debug)]
struct Page {
    bytes: Vec<u8>,
    flags: u16,
    count: usize,
}

impl Tree {
    fn open(name: &str) -> Result<Tree, MapError> {
        let path = super::file_path("lmdb", name);
        let file = ReadAt::open(&path)?;
        let fail = |text: &str| MapError::Config(format!("open database {path}: {text}"));
        if file.len == 0 {
            // What liblmdb reports for an empty file opened read-only.
            return Err(fail("Bad file descriptor"));
        }
        let meta0 = Meta::read(&file, 0).map_err(fail)?;
        let psize = meta0.psize;
        let meta1 = Meta::read(&file, psize as u64).map_err(fail)?;
        // lmdb uses the meta page with the larger transaction id, page 0 on a tie.
        let meta = if meta1.txnid > meta0.txnid {
            meta1
        } else {
            meta0
        };
        Ok(Tree {
            file,
            psize,
            root: meta.root,
            spec: format!("lmdb:{name}"),
            branches: Mutex::new(HashMap::new()),
        })
    }

    /// The value stored under exactly `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
        if self.root == P_INVALID {
            return Ok(None);
        }
        let mut pgno = self.root;
        for _ in 0..MAX_DEPTH {
            let page = self.page(pgno)?;
            if page.flags & P_LEAF != 0 {
                return self.leaf_get(&page, key);
            }
            // The last child whose first key is not above `key`; node 0's key is ignored.
            let (mut low, mut high) = (1, page.count);
            while low < high {
                let mid = low + (high - low) / 2;
                if self.node_key(&page, mid)? <= key {
                    low = mid + 1;
                } else {
                    high = mid;
                }
            }
            pgno = self.child(&page, low - 1)?;
        }
        Err(self.error(MDB_CORRUPTED))
    }

    fn leaf_get(&self, page: &Page, key: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
        let (mut low, mut high) = (0, page.count);
        while low < high {
            let mid = low + (high - low) / 2;
            match self.node_key(page, mid)?.cmp(key) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return self.node_data(page, mid).map(Some),
            }
        }
        Ok(None)
    }

    /// Every entry in key order.
    fn entries(&self) -> Result<Vec<Entry>, MapError> {
        let mut out = Vec::new();
        if self.root != P_INVALID {
            // In a sound tree every page is reached once and every entry's key and data
            // have bytes of their own, so neither count can pass the file's; a damaged
            // file whose branches share subtrees (or whose leaves share overflow data)
            // would otherwise make this walk exponential in time and memory (found by
            // fuzz/corpus/lmdb/hang-shared-subtrees).
            let mut budget = WalkBudget {
                pages: self.file.len / self.psize as u64,
                bytes: self.file.len,
            };
            self.walk(self.root, 0, &mut budget, &mut out)?;
        }
        Ok(out)
    }

    fn walk(
        &self,
        pgno: u64,
        depth: usize,
        budget: &mut WalkBudget,
        out: &mut Vec<Entry>,
    ) -> Result<(), MapError> {
        if depth >= MAX_DEPTH || budget.pages == 0 {
            return Err(self.error(MDB_CORRUPTED));
        }
        budget.pages -= 1;
        let page = self.page(pgno)?;
        for index in 0..page.count {
            if page.flags & P_LEAF != 0 {
                let entry = (
                    self.node_key(&page, index)?.to_vec(),
                    self.node_data(&page, index)?,
                );
                let size = (entry.0.len() + entry.1.len()) as u64;
                budget.bytes = budget
                    .bytes
                    .checked_sub(size)
                    .ok_or_else(|| self.error(MDB_CORRUPTED))?;
                out.push(entry);
            } else {
                self.walk(self.child(&page, index)?, depth + 1, budget, out)?;
            }
        }
        Ok(())
    }

    /// A branch or leaf page, from the cache when it is a branch page read before.
    fn page(&self, pgno: u64) -> Result<Arc<Page>, MapError> {
        // A poisoned lock only means another lookup panicked; the cache is still sound.
        let cached = match self.branches.lock() {
            Ok(cache) => cache.get(&pgno).cloned(),
            Err(poisoned) => poisoned.into_inner().get(&pgno).cloned(),
        };
        if let Some(page) = cached {
            return Ok(page);
        }
        let page = Arc::new(self.read_page(pgno)?);
        if page.flags & P_BRANCH != 0
            && let Ok(mut cache) = self.branches.lock()
            && cache.len() < MAX_CACHED
        {
            cache.insert(pgno, Arc::clone(&page));
        }
        Ok(page)
    }

    /// Reads and checks a branch or leaf page.
    fn read_page(&self, pgno: u64) -> Result<Page, MapError> {
        let bytes = self.read_pages(pgno, self.psize)?;
        let flags = le16(&bytes, 10);
        if flags & (P_BRANCH | P_LEAF) == 0 || le64(&bytes, 0) != pgno {
            return Err(self.error(MDB_CORRUPTED));
        }
        let (lower, upper) = (le16(&bytes, 12) as usize, le16(&bytes, 14) as usize);
        if lower < PAGE_HEADER || lower > upper || upper > self.psize {
            return Err(self.error(MDB_CORRUPTED));
        }
        Ok(Page {
            bytes: bytes.into_owned(),
            flags,
            count: (lower - PAGE_HEADER) / 2,
        })
    }

    /// The node at `index`: its offset, flags, and key.
    fn node<'p>(&self, page: &'p Page, index: usize) -> Result<(usize, u16, &'p [u8]), MapError> {
        let offset = le16(&page.bytes, PAGE_HEADER + 2 * index) as usize;
        let ksize = le16(&page.bytes, offset + 6) as usize;
        let key = page
            .bytes
            .get(offset + 8..offset + 8 + ksize)
            .filter(|_| offset >= PAGE_HEADER)
            .ok_or_else(|| self.error(MDB_CORRUPTED))?;
        Ok((offset, le16(&page.bytes, offset + 4), key))
    }

    fn node_key<'p>(&self, page: &'p Page, index: usize) -> Result<&'p [u8], MapError> {
        Ok(self.node(page, index)?.2)
    }

    /// A branch node's child page.
    fn child(&self, page: &Page, index: usize) -> Result<u64, MapError> {
        let (offset, flags, _) = self.node(page, index)?;
        let lo = u64::from(le16(&page.bytes, offset));
        let hi = u64::from(le16(&page.bytes, offset + 2));
        Ok(lo | hi << 16 | u64::from(flags) << 32)
    }

    /// A leaf node's data, inline or on overflow pages.
    fn node_data(&self, page: &Page, index: usize) -> Result<Vec<u8>, MapError> {
        let (offset, flags, key) = self.node(page, index)?;
        let size = usize::from(le16(&page.bytes, offset))
            | usize::from(le16(&page.bytes, offset + 2)) << 16;
        let at = offset + 8 + key.len();
        if flags & F_BIGDATA == 0 {
            return page
                .bytes
                .get(at..at + size)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| self.error(MDB_CORRUPTED));
        }
        let pgno = page
            .bytes
            .get(at..at + 8)
            .map(|b| le64(b, 0))
            .ok_or_else(|| self.error(MDB_CORRUPTED))?;
        let data = self.read_pages(pgno, PAGE_HEADER + size)?;
        if le16(&data, 10) & P_OVERFLOW == 0 || le64(&data, 0) != pgno {
            return Err(self.error(MDB_CORRUPTED));
        }
        Ok(data[PAGE_HEADER..].to_vec())
    }

    /// `len` bytes from the start of page `pgno`.
    fn read_pages(&self, pgno: u64, len: usize) -> Result<Cow<'_, [u8]>, MapError> {
        let offset = pgno
            .checked_mul(self.psize as u64)
            .ok_or_else(|| self.error(MDB_PAGE_NOTFOUND))?;
        self.file.read(offset, len).map_err(|err| match err {
            ReadError::Short => self.error(MDB_PAGE_NOTFOUND),
            ReadError::Io(err) => self.error(&strerror(&err)),
        })
    }

    /// dict_lmdb.c's message for a failed read.
    fn error(&self, text: &str) -> MapError {
        MapError::Retry(format!("error reading {}: {text}", self.spec))
    }
}

/// The parts of a meta page that a reader needs.
struct Meta {
    psize: usize,
    root: u64,
    txnid: u64,
}

/// Where things are in a meta page: the meta follows the page header.
const META_MAGIC: usize = PAGE_HEADER;
const META_VERSION: usize = PAGE_HEADER + 4;
const META_MAPSIZE: usize = PAGE_HEADER + 16;
/// The free-list database record; its pad field holds the page size, its flags the
/// environment's flags.
const META_FREE_DB: usize = PAGE_HEADER + 24;
const META_MAIN_DB: usize = META_FREE_DB + DB_RECORD;
const META_LAST_PG: usize = META_MAIN_DB + DB_RECORD;
const META_TXNID: usize = META_LAST_PG + 8;
const META_END: usize = META_TXNID + 8;
/// An MDB_db record: pad u32, flags u16, depth u16, branch/leaf/overflow page counts,
/// entries and root, u64 each.
const DB_RECORD: usize = 48;
const DB_ROOT: usize = 40;

impl Meta {
    fn read(file: &ReadAt, offset: u64) -> Result<Meta, &'static str> {
        let bytes = file.read(offset, META_END).map_err(|_| MDB_INVALID)?;
        if le16(&bytes, 10) & P_META == 0 || le32(&bytes, META_MAGIC) != MAGIC {
            return Err(MDB_INVALID);
        }
        if le32(&bytes, META_VERSION) != DATA_VERSION {
            return Err(MDB_VERSION_MISMATCH);
        }
        let psize = le32(&bytes, META_FREE_DB) as usize;
        if !psize.is_power_of_two() || !(512..=65536).contains(&psize) {
            return Err(MDB_INVALID);
        }
        Ok(Meta {
            psize,
            root: le64(&bytes, META_MAIN_DB + DB_ROOT),
            txnid: le64(&bytes, META_TXNID),
        })
    }
}

/// Little-endian numbers at `at`; 0 past the end (callers check sizes where it matters).
fn le16(bytes: &[u8], at: usize) -> u16 {
    bytes
        .get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

#[cfg(test)]
mod tests;
