//! A `.zip` written front to back to a writer that cannot seek, entries
//! STORED (CAD files and images rarely shrink; compressing would cost CPU
//! on every download for little), with data descriptors (general purpose
//! bit 3: size and CRC follow the data, so nothing is read twice) and ZIP64
//! always (a folder passes 4 GiB easily, and a fixed layout is simpler to
//! prove than switching at a size). Written here rather than with a crate:
//! `zip` and `async_zip` bring compression stacks and far more format than
//! this one fixed layout needs; these ~150 lines are checked by `unzip -t`
//! and Python's `zipfile` in `tests/it/content.rs`, and past 4 GiB by the
//! unit test below.

use std::io::{self, Write};

const LOCAL: u32 = 0x0403_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
const END: u32 = 0x0605_4b50;
/// 4.5: ZIP64.
const VERSION: u16 = 45;
/// Bit 3 (sizes in the data descriptor) and bit 11 (names are UTF-8).
const FLAGS: u16 = 0x0008 | 0x0800;

struct Entry {
    name: Vec<u8>,
    dos_time: u16,
    dos_date: u16,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Writes entries one after another; the central directory at `finish`.
pub struct StreamZip<W: Write> {
    out: W,
    written: u64,
    entries: Vec<Entry>,
    current: Option<(Entry, crc32fast::Hasher)>,
}

impl<W: Write> StreamZip<W> {
    pub fn new(out: W) -> Self {
        StreamZip {
            out,
            written: 0,
            entries: Vec::new(),
            current: None,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Begins an entry named `name` (UTF-8, `/`-separated), modified at
    /// `modified_at` (unix seconds, written as UTC).
    pub fn start(&mut self, name: &str, modified_at: i64) -> io::Result<()> {
        let (dos_time, dos_date) = dos_time(modified_at);
        let name = name.as_bytes().to_vec();
        let name_len = u16::try_from(name.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name too long"))?;
        let mut h = Vec::with_capacity(30 + name.len() + 20);
        h.extend_from_slice(&LOCAL.to_le_bytes());
        h.extend_from_slice(&VERSION.to_le_bytes());
        h.extend_from_slice(&FLAGS.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // stored
        h.extend_from_slice(&dos_time.to_le_bytes());
        h.extend_from_slice(&dos_date.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes()); // crc: in the descriptor
        h.extend_from_slice(&u32::MAX.to_le_bytes()); // sizes: in ZIP64
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&name_len.to_le_bytes());
        h.extend_from_slice(&20u16.to_le_bytes());
        h.extend_from_slice(&name);
        // ZIP64 extra: sizes unknown yet (zero), so the descriptor's
        // sizes are 8 bytes each.
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        let offset = self.written;
        self.put(&h)?;
        self.current = Some((
            Entry {
                name,
                dos_time,
                dos_date,
                crc: 0,
                size: 0,
                offset,
            },
            crc32fast::Hasher::new(),
        ));
        Ok(())
    }

    pub fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        let Some((entry, crc)) = self.current.as_mut() else {
            return Err(io::Error::other("data outside an entry"));
        };
        crc.update(data);
        entry.size += data.len() as u64;
        self.put(data)
    }

    pub fn finish_entry(&mut self) -> io::Result<()> {
        let Some((mut entry, crc)) = self.current.take() else {
            return Err(io::Error::other("no entry to finish"));
        };
        entry.crc = crc.finalize();
        let mut d = Vec::with_capacity(24);
        d.extend_from_slice(&DESCRIPTOR.to_le_bytes());
        d.extend_from_slice(&entry.crc.to_le_bytes());
        d.extend_from_slice(&entry.size.to_le_bytes());
        d.extend_from_slice(&entry.size.to_le_bytes());
        self.put(&d)?;
        self.entries.push(entry);
        Ok(())
    }

    /// Writes the central directory and the (ZIP64) end records;
    /// answers the archive's length.
    pub fn finish(mut self) -> io::Result<u64> {
        if self.current.is_some() {
            self.finish_entry()?;
        }
        let start = self.written;
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            let mut c = Vec::with_capacity(46 + e.name.len() + 28);
            c.extend_from_slice(&CENTRAL.to_le_bytes());
            c.extend_from_slice(&(VERSION | 0x0300).to_le_bytes()); // made by: Unix
            c.extend_from_slice(&VERSION.to_le_bytes());
            c.extend_from_slice(&FLAGS.to_le_bytes());
            c.extend_from_slice(&0u16.to_le_bytes());
            c.extend_from_slice(&e.dos_time.to_le_bytes());
            c.extend_from_slice(&e.dos_date.to_le_bytes());
            c.extend_from_slice(&e.crc.to_le_bytes());
            c.extend_from_slice(&u32::MAX.to_le_bytes());
            c.extend_from_slice(&u32::MAX.to_le_bytes());
            c.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            c.extend_from_slice(&28u16.to_le_bytes()); // extra
            c.extend_from_slice(&0u16.to_le_bytes()); // comment
            c.extend_from_slice(&0u16.to_le_bytes()); // disk
            c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            c.extend_from_slice(&(0o100644u32 << 16).to_le_bytes()); // rw-r--r--
            c.extend_from_slice(&u32::MAX.to_le_bytes()); // offset: in ZIP64
            c.extend_from_slice(&e.name);
            c.extend_from_slice(&1u16.to_le_bytes());
            c.extend_from_slice(&24u16.to_le_bytes());
            c.extend_from_slice(&e.size.to_le_bytes());
            c.extend_from_slice(&e.size.to_le_bytes());
            c.extend_from_slice(&e.offset.to_le_bytes());
            self.put(&c)?;
        }
        let end = self.written;
        let count = entries.len() as u64;
        let mut t = Vec::with_capacity(56 + 20 + 22);
        t.extend_from_slice(&END64.to_le_bytes());
        t.extend_from_slice(&44u64.to_le_bytes());
        t.extend_from_slice(&(VERSION | 0x0300).to_le_bytes());
        t.extend_from_slice(&VERSION.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&(end - start).to_le_bytes());
        t.extend_from_slice(&start.to_le_bytes());
        t.extend_from_slice(&LOCATOR64.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&end.to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(&END.to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        t.extend_from_slice(&u16::MAX.to_le_bytes());
        t.extend_from_slice(&u16::MAX.to_le_bytes());
        t.extend_from_slice(&u32::MAX.to_le_bytes());
        t.extend_from_slice(&u32::MAX.to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        self.put(&t)?;
        self.out.flush()?;
        Ok(self.written)
    }
}

/// MS-DOS time and date of `unix` seconds in UTC (1980 at the earliest).
fn dos_time(unix: i64) -> (u16, u16) {
    let Ok(ts) = jiff::Timestamp::from_second(unix) else {
        return (0, 0x21);
    };
    let dt = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    if dt.year() < 1980 {
        return (0, 0x21); // 1980-01-01
    }
    let time = ((dt.hour() as u16) << 11) | ((dt.minute() as u16) << 5) | (dt.second() as u16 / 2);
    let date =
        (((dt.year() - 1980).min(127) as u16) << 9) | ((dt.month() as u16) << 5) | dt.day() as u16;
    (time, date)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts bytes; remembers only the tail, where the end records are.
    #[derive(Default)]
    struct Sink {
        len: u64,
        tail: Vec<u8>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.len += buf.len() as u64;
            self.tail.extend_from_slice(buf);
            if self.tail.len() > 4096 {
                self.tail.drain(..self.tail.len() - 4096);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn offsets_and_sizes_past_4_gib_are_written_in_zip64() {
        let mut sink = Sink::default();
        let mut zip = StreamZip::new(&mut sink);
        let chunk = vec![0u8; 1 << 20];
        zip.start("big.bin", 1_700_000_000).unwrap();
        for _ in 0..(4 * 1024 + 1) {
            zip.write_data(&chunk).unwrap();
        }
        zip.finish_entry().unwrap();
        zip.start("after.txt", 1_700_000_000).unwrap();
        zip.write_data(b"hi").unwrap();
        let len = zip.finish().unwrap();
        assert_eq!(len, sink.len);
        let big = (4u64 * 1024 + 1) << 20;
        let second_offset = 30 + 7 + 20 + big + 24;
        assert!(second_offset > u64::from(u32::MAX));
        let cd_start = second_offset + 30 + 9 + 20 + 2 + 24;
        let cd_len = (46 + 7 + 28) + (46 + 9 + 28);
        let t = &sink.tail[sink.tail.len() - (cd_len + 56 + 20 + 22)..];
        // First central entry: size, size, offset 0.
        let first_extra = 46 + 7 + 4;
        assert_eq!(u64_at(t, first_extra), big);
        assert_eq!(u64_at(t, first_extra + 8), big);
        assert_eq!(u64_at(t, first_extra + 16), 0);
        // Second: its offset past 4 GiB.
        let second_extra = (46 + 7 + 28) + 46 + 9 + 4;
        assert_eq!(u64_at(t, second_extra), 2);
        assert_eq!(u64_at(t, second_extra + 16), second_offset);
        // ZIP64 end: two entries, the directory's length and start.
        let end64 = cd_len;
        assert_eq!(&t[end64..end64 + 4], &END64.to_le_bytes());
        assert_eq!(u64_at(t, end64 + 24), 2);
        assert_eq!(u64_at(t, end64 + 40), cd_len as u64);
        assert_eq!(u64_at(t, end64 + 48), cd_start);
        // The locator points at the ZIP64 end.
        assert_eq!(u64_at(t, end64 + 56 + 8), cd_start + cd_len as u64);
        assert_eq!(len, cd_start + cd_len as u64 + 56 + 20 + 22);
    }

    #[test]
    fn dos_times_are_utc_and_start_in_1980() {
        // 2023-11-14 22:13:20 UTC.
        assert_eq!(
            dos_time(1_700_000_000),
            ((22 << 11) | (13 << 5) | 10, (43 << 9) | (11 << 5) | 14)
        );
        assert_eq!(dos_time(0), (0, 0x21));
    }
}
