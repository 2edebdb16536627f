//! The vector index kept on disk between runs: written when the host stops
//! cleanly, read back at the next start, so a large store's start reads one
//! file instead of every vector in the database (and never holds them all
//! as float32 at once).
//!
//! The file is a snapshot of one moment. It is removed as it is read, so a
//! host that crashes later rebuilds from the store instead of trusting a
//! file older than its last writes; and whatever the store gained or lost
//! after the snapshot (a write that raced the stop, another host's writes
//! through replication) is caught up by the same follow replicas use.
//!
//! Layout, little-endian: magic, the store's identity, dims, entry count,
//! the interned owner and type names, the followed id, then each array of
//! [`Parts`] whole, then a CRC-32 of everything before it.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::index::{Parts, VectorIndex, Visibility};

/// The format's name and version: a file of another version is rebuilt.
const MAGIC: &[u8; 8] = b"CXVIDX02";

/// Longest store identity accepted (they are 32 hex digits).
const MAX_IDENTITY: u32 = 256;

/// Bytes per entry besides its codes: id, entity id, scope, owner, type,
/// scale.
const ENTRY_BYTES: u64 = 8 + 8 + 1 + 4 + 4 + 4;

/// What a start reads back.
pub struct Snapshot {
    pub index: VectorIndex,
    /// Owner and type names by their interned number.
    pub interned: Vec<String>,
    /// The highest observation id the index had followed.
    pub followed: i64,
}

/// Where the index of the store at `database` is kept.
pub fn path_for(database: &Path) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(".index");
    database.with_file_name(name)
}

/// Writes the snapshot atomically (a temporary file, synced, renamed).
/// Returns its size in bytes.
pub fn save(
    path: &Path,
    store: &str,
    index: &VectorIndex,
    interned: &[String],
    followed: i64,
) -> io::Result<u64> {
    let temporary = path.with_extension("index.partial");
    let file = File::create(&temporary)?;
    let mut out = Checksummed::new(BufWriter::with_capacity(1 << 20, file));
    let parts = index.parts();
    out.write_all(MAGIC)?;
    out.write_all(&(store.len() as u32).to_le_bytes())?;
    out.write_all(store.as_bytes())?;
    out.write_all(&(parts.dims as u32).to_le_bytes())?;
    out.write_all(&(parts.ids.len() as u64).to_le_bytes())?;
    out.write_all(&(interned.len() as u32).to_le_bytes())?;
    for name in interned {
        out.write_all(&(name.len() as u32).to_le_bytes())?;
        out.write_all(name.as_bytes())?;
    }
    out.write_all(&followed.to_le_bytes())?;
    write_each(&mut out, parts.ids, |v| v.to_le_bytes())?;
    write_each(&mut out, parts.entity_ids, |v| v.to_le_bytes())?;
    write_each(&mut out, parts.visibility, |v| [v.scope])?;
    write_each(&mut out, parts.visibility, |v| v.owner.to_le_bytes())?;
    write_each(&mut out, parts.entity_types, |v| v.to_le_bytes())?;
    write_each(&mut out, parts.scales, |v| v.to_le_bytes())?;
    write_each(&mut out, parts.codes, |v| v.to_le_bytes())?;
    let crc = out.crc.clone().finalize();
    let mut writer = out.inner;
    writer.write_all(&crc.to_le_bytes())?;
    let file = writer
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    let size = file.metadata()?.len();
    drop(file);
    std::fs::rename(&temporary, path)?;
    Ok(size)
}

/// Reads the snapshot at `path` and removes the file. `Ok(None)` when
/// there is none; an error when it cannot be used (another store, version
/// or dims, damaged, truncated): the caller rebuilds from the store.
pub fn take(path: &Path, store: &str, dims: usize) -> io::Result<Option<Snapshot>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let result = read(file, store, dims);
    std::fs::remove_file(path)?;
    result.map(Some)
}

fn read(file: File, store: &str, dims: usize) -> io::Result<Snapshot> {
    let size = file.metadata()?.len();
    let mut input = Checksummed::new(BufReader::with_capacity(1 << 20, file));
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(invalid("not an index file of this version"));
    }
    let identity_length = read_u32(&mut input)?;
    if identity_length > MAX_IDENTITY {
        return Err(invalid("store identity too long"));
    }
    let mut identity = vec![0u8; identity_length as usize];
    input.read_exact(&mut identity)?;
    if identity != store.as_bytes() {
        return Err(invalid(
            "written for another store (the database was replaced or restored)",
        ));
    }
    let file_dims = read_u32(&mut input)? as usize;
    if file_dims != dims {
        return Err(invalid(format!(
            "written for {file_dims}-dimension vectors, the model makes {dims}"
        )));
    }
    let count = read_u64(&mut input)?;
    // Every length is checked against the file's size before anything is
    // allocated for it: a damaged count cannot ask for unbounded memory.
    let entries_bytes = count
        .checked_mul(ENTRY_BYTES + dims as u64)
        .filter(|&bytes| bytes < size)
        .ok_or_else(|| invalid("entry count larger than the file"))?;
    let names = read_u32(&mut input)?;
    let mut interned = Vec::with_capacity((names as u64).min(size / 4) as usize);
    let mut left = size.saturating_sub(entries_bytes);
    for _ in 0..names {
        let length = u64::from(read_u32(&mut input)?);
        left = left
            .checked_sub(length + 4)
            .ok_or_else(|| invalid("name longer than the file"))?;
        let mut bytes = vec![0u8; length as usize];
        input.read_exact(&mut bytes)?;
        interned.push(String::from_utf8(bytes).map_err(|_| invalid("name not UTF-8"))?);
    }
    let followed = read_u64(&mut input)? as i64;
    let n = count as usize;
    let ids = read_each(&mut input, n, i64::from_le_bytes)?;
    let entity_ids = read_each(&mut input, n, i64::from_le_bytes)?;
    let scopes = read_each(&mut input, n, |[b]: [u8; 1]| b)?;
    let owners = read_each(&mut input, n, u32::from_le_bytes)?;
    let visibility: Vec<Visibility> = scopes
        .into_iter()
        .zip(owners)
        .map(|(scope, owner)| Visibility { scope, owner })
        .collect();
    let entity_types = read_each(&mut input, n, u32::from_le_bytes)?;
    let scales = read_each(&mut input, n, f32::from_le_bytes)?;
    let codes = read_each(&mut input, n * dims, i8::from_le_bytes)?;
    let computed = input.crc.clone().finalize();
    let mut trailer = [0u8; 4];
    input.inner.read_exact(&mut trailer)?;
    if u32::from_le_bytes(trailer) != computed {
        return Err(invalid("checksum mismatch"));
    }
    if input.inner.read(&mut [0u8; 1])? != 0 {
        return Err(invalid("bytes past the checksum"));
    }
    // What the entries name must exist: an owner or type number past the
    // names, or a repeated name, would let the next name interned share a
    // number with entries already filed under another.
    let distinct: std::collections::HashSet<&String> = interned.iter().collect();
    if distinct.len() != interned.len() {
        return Err(invalid("a name repeats"));
    }
    let names_count = interned.len() as u32;
    if visibility_out_of_range(&visibility, names_count)
        || entity_types.iter().any(|&t| t >= names_count)
    {
        return Err(invalid("an entry names an owner or type the file lacks"));
    }
    let index = VectorIndex::from_parts(Parts {
        dims,
        ids,
        entity_ids,
        visibility,
        entity_types,
        scales,
        codes,
    })
    .ok_or_else(|| invalid("entries disagree with each other"))?;
    Ok(Snapshot {
        index,
        interned,
        followed,
    })
}

fn visibility_out_of_range(visibility: &[Visibility], names: u32) -> bool {
    // Scopes are 0 (agent), 1 (workspace) and 2 (global).
    visibility.iter().any(|v| v.scope > 2 || v.owner >= names)
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

fn read_u64(input: &mut impl Read) -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    input.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// Writes each value's bytes, staged through a buffer of whole values.
fn write_each<T, const N: usize>(
    out: &mut impl Write,
    values: &[T],
    bytes: impl Fn(&T) -> [u8; N],
) -> io::Result<()> {
    let mut buffer = Vec::with_capacity(64 * 1024);
    for chunk in values.chunks(64 * 1024 / N) {
        buffer.clear();
        buffer.extend(chunk.iter().flat_map(&bytes));
        out.write_all(&buffer)?;
    }
    Ok(())
}

/// Reads `n` values of `N` bytes each, staged through a fixed buffer.
fn read_each<T, const N: usize>(
    input: &mut impl Read,
    n: usize,
    value: impl Fn([u8; N]) -> T,
) -> io::Result<Vec<T>> {
    let mut values = Vec::with_capacity(n);
    let mut buffer = vec![0u8; 64 * 1024 / N * N];
    let mut left = n;
    while left > 0 {
        let take = left.min(buffer.len() / N);
        let bytes = &mut buffer[..take * N];
        input.read_exact(bytes)?;
        values.extend(
            bytes
                .chunks_exact(N)
                .map(|c| value(c.try_into().expect("chunks of N"))),
        );
        left -= take;
    }
    Ok(values)
}

/// A reader or writer that keeps a CRC-32 of the bytes through it.
struct Checksummed<T> {
    inner: T,
    crc: crc32fast::Hasher,
}

impl<T> Checksummed<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            crc: crc32fast::Hasher::new(),
        }
    }
}

impl<R: Read> Read for Checksummed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = "0123456789abcdef0123456789abcdef";

    fn sample() -> (VectorIndex, Vec<String>) {
        let mut index = VectorIndex::new(4);
        for i in 0..300i64 {
            let v = [i as f32, 1.0, -(i as f32) / 3.0, 0.5];
            let visibility = Visibility {
                scope: (i % 3) as u8,
                owner: (i % 2) as u32,
            };
            index.insert(i * 7, i / 10, visibility, (i % 4) as u32, &v);
        }
        index.remove(21);
        (
            index,
            vec!["alpha".into(), "beta".into(), "note".into(), "task".into()],
        )
    }

    #[test]
    fn a_saved_index_reads_back_the_same_and_the_file_is_consumed() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("memory.db"));
        let (index, interned) = sample();
        save(&path, STORE, &index, &interned, 2093).unwrap();
        let snapshot = take(&path, STORE, 4).unwrap().expect("a snapshot");
        assert!(!path.exists(), "read once, then gone");
        assert_eq!(snapshot.interned, interned);
        assert_eq!(snapshot.followed, 2093);
        assert_eq!(snapshot.index.fingerprint(), index.fingerprint());
        let query = [3.0, 1.0, -1.0, 0.5];
        struct All;
        impl super::super::index::EntryFilter for All {
            fn allow(&self, _: Visibility, _: u32) -> bool {
                true
            }
        }
        assert_eq!(
            snapshot.index.search(&query, 10, &All),
            index.search(&query, 10, &All)
        );
        assert!(take(&path, STORE, 4).unwrap().is_none());
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("memory.db"));
        let (index, interned) = sample();

        save(&path, STORE, &index, &interned, 1).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let error = take(&path, STORE, 4)
            .err()
            .expect("a flipped bit is caught");
        assert!(error.to_string().contains("checksum"), "{error}");
        assert!(!path.exists());

        save(&path, STORE, &index, &interned, 1).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        assert!(
            take(&path, STORE, 4).is_err(),
            "a truncated file is refused"
        );

        save(&path, STORE, &index, &interned, 1).unwrap();
        let error = take(&path, STORE, 384)
            .err()
            .expect("other dims are refused");
        assert!(error.to_string().contains("dimension"), "{error}");

        // A count that claims more entries than the file holds is refused
        // before anything is allocated for it.
        save(&path, STORE, &index, &interned, 1).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let count_at = 8 + 4 + STORE.len() + 4;
        bytes[count_at..count_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let error = take(&path, STORE, 4)
            .err()
            .expect("a huge count is refused");
        assert!(
            error.to_string().contains("larger than the file"),
            "{error}"
        );
    }
}
