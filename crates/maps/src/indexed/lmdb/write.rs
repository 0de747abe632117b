//! Building an lmdb data file from a whole table in one pass.
//!
//! The entries are sorted, packed into full leaf pages (large values on overflow pages, as
//! lmdb puts a node there when it would exceed its node size limit), and the branch levels
//! are built over them until one root page remains. Pages are numbered in the order they
//! are written; the two meta pages at the front are written last, once the root is known.
//! The result is what lmdb itself would hold after one write transaction: meta page 0 of
//! an empty table (transaction 0), meta page 1 of the table (transaction 1), an empty free
//! list.
//!
//! Trust: the entries are ours; sizes that lmdb refuses are refused at `put` with lmdb's
//! message, as Postfix's postmap reports them.

use super::{
    DATA_VERSION, DB_RECORD, DB_ROOT, F_BIGDATA, MAGIC, META_FREE_DB, META_LAST_PG, META_MAGIC,
    META_MAIN_DB, META_MAPSIZE, META_TXNID, META_VERSION, P_BRANCH, P_INVALID, P_LEAF, P_META,
    P_OVERFLOW, PAGE_HEADER,
};
use crate::MapError;
use crate::indexed::Entry;
use crate::indexed::file::TempFile;

/// The page size Tern writes (the x86-64 and arm64 page size lmdb would choose).
const PSIZE: usize = 4096;
const PSIZE_U32: u32 = 4096;
/// lmdb's largest key (MDB_MAXKEYSIZE).
const MAX_KEY: usize = 511;
/// lmdb's node size limit for this page size (me_nodemax): larger leaf nodes keep their
/// data on overflow pages.
const NODE_MAX: usize = (((PSIZE - PAGE_HEADER) / 2) & !1) - 2;
/// The map size recorded in the file: Postfix's lmdb_map_size default, or the file size.
const MAP_SIZE: u64 = 16 * 1024 * 1024;
/// The free-list database's flags as lmdb writes them: MDB_INTEGERKEY, plus the
/// environment flag MDB_NOSUBDIR kept in the same field.
const FREE_DB_FLAGS: u16 = 0x4008;

/// Refuses a stored key that lmdb refuses (empty, or longer than 511 bytes), with the
/// message Postfix's postmap gives.
pub(crate) fn check_sizes(name: &str, key: &[u8]) -> Result<(), MapError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(MapError::Config(format!(
            "error updating lmdb:{name}: MDB_BAD_VALSIZE: Unsupported size of key/DB \
             name/data, or wrong DUPFIXED size"
        )));
    }
    Ok(())
}

/// Writes `entries` as the lmdb file `path` (through `PATH.tmp`).
pub(crate) fn write(
    name: &str,
    path: &str,
    mut entries: Vec<Entry>,
    mode: u32,
) -> Result<(), MapError> {
    for (key, _) in &entries {
        check_sizes(name, key)?;
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = TempFile::create(path, mode)?;
    let mut builder = Builder {
        out: &mut out,
        next: 2,
        stats: Stats::default(),
    };
    builder.pad(2)?;
    let root = builder.tree(&entries)?;
    let Builder { next, stats, .. } = builder;
    let last_pg = next - 1;
    let map_size = MAP_SIZE.max(next * PSIZE as u64);
    let empty = Stats {
        root: P_INVALID,
        ..Stats::default()
    };
    let mut metas = meta_page(0, &empty, 1, map_size, 0);
    metas.extend(meta_page(1, &Stats { root, ..stats }, last_pg, map_size, 1));
    out.write_at(0, &metas)?;
    out.commit()
}

/// The counts an MDB_db record holds.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    depth: u16,
    branch_pages: u64,
    leaf_pages: u64,
    overflow_pages: u64,
    entries: u64,
    root: u64,
}

struct Builder<'a> {
    out: &'a mut TempFile,
    /// The next page number to write.
    next: u64,
    stats: Stats,
}

/// A page written, as its parent refers to it: the lowest key below it and its number.
struct Child {
    low_key: Vec<u8>,
    pgno: u64,
}

/// A page being filled with nodes from the top down, their offsets from the bottom up.
struct PageBuf {
    bytes: Vec<u8>,
    lower: usize,
    upper: usize,
}

impl PageBuf {
    fn new() -> PageBuf {
        PageBuf {
            bytes: vec![0; PSIZE],
            lower: PAGE_HEADER,
            upper: PSIZE,
        }
    }

    fn is_empty(&self) -> bool {
        self.lower == PAGE_HEADER
    }

    /// Whether a node of `size` bytes (before rounding) fits with its offset.
    fn fits(&self, size: usize) -> bool {
        even(size) + 2 <= self.upper - self.lower
    }

    /// Adds a node: its three u16 header words, the key, and `data`.
    fn add(&mut self, words: [u16; 3], key: &[u8], data: &[u8]) {
        let size = even(8 + key.len() + data.len());
        self.upper -= size;
        let at = self.upper;
        // Fits: callers asked `fits` first, so `upper` stays above `lower`.
        let offset = u16::try_from(at).unwrap_or(u16::MAX);
        self.bytes[self.lower..self.lower + 2].copy_from_slice(&offset.to_le_bytes());
        self.lower += 2;
        for (i, word) in words.iter().enumerate() {
            self.bytes[at + 2 * i..at + 2 * i + 2].copy_from_slice(&word.to_le_bytes());
        }
        let ksize = u16::try_from(key.len()).unwrap_or(u16::MAX);
        self.bytes[at + 6..at + 8].copy_from_slice(&ksize.to_le_bytes());
        self.bytes[at + 8..at + 8 + key.len()].copy_from_slice(key);
        let data_at = at + 8 + key.len();
        self.bytes[data_at..data_at + data.len()].copy_from_slice(data);
    }

    /// The finished page, numbered `pgno`.
    fn finish(&mut self, pgno: u64, flags: u16) -> Vec<u8> {
        let mut bytes = std::mem::replace(&mut self.bytes, vec![0; PSIZE]);
        bytes[0..8].copy_from_slice(&pgno.to_le_bytes());
        bytes[10..12].copy_from_slice(&flags.to_le_bytes());
        // Both fit in u16: they are offsets inside a 4096-byte page.
        let lower = u16::try_from(self.lower).unwrap_or(u16::MAX);
        let upper = u16::try_from(self.upper).unwrap_or(u16::MAX);
        bytes[12..14].copy_from_slice(&lower.to_le_bytes());
        bytes[14..16].copy_from_slice(&upper.to_le_bytes());
        self.lower = PAGE_HEADER;
        self.upper = PSIZE;
        bytes
    }
}

impl Builder<'_> {
    /// Writes empty pages (the meta pages' places).
    fn pad(&mut self, pages: usize) -> Result<(), MapError> {
        self.out.write(&vec![0; pages * PSIZE])
    }

    /// Writes the whole tree; its root page number, or P_INVALID for an empty table.
    fn tree(&mut self, entries: &[Entry]) -> Result<u64, MapError> {
        if entries.is_empty() {
            return Ok(P_INVALID);
        }
        let mut level = self.leaves(entries)?;
        self.stats.depth = 1;
        while level.len() > 1 {
            level = self.branches(&level)?;
            self.stats.depth += 1;
        }
        Ok(level.first().map_or(P_INVALID, |root| root.pgno))
    }

    fn leaves(&mut self, entries: &[Entry]) -> Result<Vec<Child>, MapError> {
        let mut children = Vec::new();
        let mut page = PageBuf::new();
        let mut low_key: &[u8] = &[];
        for (key, value) in entries {
            let big = 8 + key.len() + value.len() > NODE_MAX;
            let node_size = 8 + key.len() + if big { 8 } else { value.len() };
            if !page.fits(node_size) {
                children.push(self.flush(&mut page, P_LEAF, low_key)?);
            }
            if page.is_empty() {
                low_key = key;
            }
            // Data sizes fit in 32 bits: they come from lines of text.
            let size = u32::try_from(value.len()).unwrap_or(u32::MAX);
            let (lo, hi) = ((size & 0xffff) as u16, (size >> 16) as u16);
            if big {
                let first = self.overflow(value)?;
                page.add([lo, hi, F_BIGDATA], key, &first.to_le_bytes());
            } else {
                page.add([lo, hi, 0], key, value);
            }
            self.stats.entries += 1;
        }
        children.push(self.flush(&mut page, P_LEAF, low_key)?);
        Ok(children)
    }

    /// Writes `value` on overflow pages; the first one's number.
    fn overflow(&mut self, value: &[u8]) -> Result<u64, MapError> {
        let pages = (PAGE_HEADER + value.len()).div_ceil(PSIZE);
        let pgno = self.next;
        let mut bytes = vec![0; pages * PSIZE];
        bytes[0..8].copy_from_slice(&pgno.to_le_bytes());
        bytes[10..12].copy_from_slice(&P_OVERFLOW.to_le_bytes());
        let count = u32::try_from(pages).unwrap_or(u32::MAX);
        bytes[12..16].copy_from_slice(&count.to_le_bytes());
        bytes[PAGE_HEADER..PAGE_HEADER + value.len()].copy_from_slice(value);
        self.out.write(&bytes)?;
        self.next += pages as u64;
        self.stats.overflow_pages += pages as u64;
        Ok(pgno)
    }

    /// One level of branch pages over `children`. lmdb wants two nodes or more in a
    /// branch page, so a last page that would hold one takes one more from the page before.
    fn branches(&mut self, children: &[Child]) -> Result<Vec<Child>, MapError> {
        let room_empty = PSIZE - PAGE_HEADER;
        let mut groups: Vec<Vec<&Child>> = Vec::new();
        let mut group: Vec<&Child> = Vec::new();
        let mut room = room_empty;
        for child in children {
            // A page's first node has an empty key.
            let key_len = if group.is_empty() {
                0
            } else {
                child.low_key.len()
            };
            let mut size = even(8 + key_len) + 2;
            if size > room {
                groups.push(std::mem::take(&mut group));
                room = room_empty;
                size = even(8) + 2;
            }
            room -= size;
            group.push(child);
        }
        groups.push(group);
        if groups.len() > 1 && groups.last().is_some_and(|g| g.len() == 1) {
            let count = groups.len();
            if let Some(moved) = groups[count - 2].pop() {
                groups[count - 1].insert(0, moved);
            }
        }
        let mut parents = Vec::with_capacity(groups.len());
        for group in groups {
            let mut page = PageBuf::new();
            for (index, child) in group.iter().enumerate() {
                let key: &[u8] = if index == 0 { &[] } else { &child.low_key };
                let [lo, hi, top, _] = split_pgno(child.pgno);
                page.add([lo, hi, top], key, &[]);
            }
            let low_key = group.first().map_or(&[][..], |c| &c.low_key[..]);
            parents.push(self.flush(&mut page, P_BRANCH, low_key)?);
        }
        Ok(parents)
    }

    /// Writes a filled page.
    fn flush(&mut self, page: &mut PageBuf, flags: u16, low_key: &[u8]) -> Result<Child, MapError> {
        let pgno = self.next;
        let bytes = page.finish(pgno, flags);
        self.out.write(&bytes)?;
        self.next += 1;
        if flags == P_LEAF {
            self.stats.leaf_pages += 1;
        } else {
            self.stats.branch_pages += 1;
        }
        Ok(Child {
            low_key: low_key.to_vec(),
            pgno,
        })
    }
}

/// A page number as a branch node's lo, hi and flags words.
fn split_pgno(pgno: u64) -> [u16; 4] {
    [
        (pgno & 0xffff) as u16,
        (pgno >> 16 & 0xffff) as u16,
        (pgno >> 32 & 0xffff) as u16,
        (pgno >> 48) as u16,
    ]
}

fn even(n: usize) -> usize {
    n + (n & 1)
}

/// A meta page.
fn meta_page(pgno: u64, main: &Stats, last_pg: u64, map_size: u64, txnid: u64) -> Vec<u8> {
    let mut page = vec![0u8; PSIZE];
    page[0..8].copy_from_slice(&pgno.to_le_bytes());
    page[10..12].copy_from_slice(&P_META.to_le_bytes());
    page[META_MAGIC..META_MAGIC + 4].copy_from_slice(&MAGIC.to_le_bytes());
    page[META_VERSION..META_VERSION + 4].copy_from_slice(&DATA_VERSION.to_le_bytes());
    page[META_MAPSIZE..META_MAPSIZE + 8].copy_from_slice(&map_size.to_le_bytes());
    let free = Stats {
        root: P_INVALID,
        ..Stats::default()
    };
    // The page size lives in the free-list record's pad field.
    db_record(
        &mut page[META_FREE_DB..META_FREE_DB + DB_RECORD],
        PSIZE_U32,
        FREE_DB_FLAGS,
        &free,
    );
    db_record(
        &mut page[META_MAIN_DB..META_MAIN_DB + DB_RECORD],
        0,
        0,
        main,
    );
    page[META_LAST_PG..META_LAST_PG + 8].copy_from_slice(&last_pg.to_le_bytes());
    page[META_TXNID..META_TXNID + 8].copy_from_slice(&txnid.to_le_bytes());
    page
}

fn db_record(out: &mut [u8], pad: u32, flags: u16, stats: &Stats) {
    out[0..4].copy_from_slice(&pad.to_le_bytes());
    out[4..6].copy_from_slice(&flags.to_le_bytes());
    out[6..8].copy_from_slice(&stats.depth.to_le_bytes());
    let words = [
        stats.branch_pages,
        stats.leaf_pages,
        stats.overflow_pages,
        stats.entries,
    ];
    for (i, word) in words.iter().enumerate() {
        out[8 + 8 * i..16 + 8 * i].copy_from_slice(&word.to_le_bytes());
    }
    out[DB_ROOT..DB_ROOT + 8].copy_from_slice(&stats.root.to_le_bytes());
}
