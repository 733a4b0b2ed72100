//! Reading and writing the files of a package: the gzip'd tar and a plugin directory.
//!
//! Both readers hold the same rules: only regular files with flat names (see
//! [`check_file_name`]), no duplicates, at most [`Limits::max_entries`] entries, each at most
//! [`Limits::max_file_bytes`] (`manifest.json` at most [`Limits::max_manifest_bytes`]) and
//! [`Limits::max_total_bytes`] together. Everything is read into memory; nothing is written.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::error::{Error, Result};
use crate::manifest::{MANIFEST, check_file_name};

/// File name → contents.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Size and count limits of a package.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Sum of the file sizes (uncompressed).
    pub max_total_bytes: u64,
    /// One file.
    pub max_file_bytes: u64,
    /// `manifest.json`.
    pub max_manifest_bytes: u64,
    /// Number of archive entries (files).
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_total_bytes: 64 * 1024 * 1024,
            max_file_bytes: 64 * 1024 * 1024,
            max_manifest_bytes: 64 * 1024,
            max_entries: 64,
        }
    }
}

/// Tracks the sizes and count of files as they are read.
struct Budget<'a> {
    limits: &'a Limits,
    total: u64,
    entries: usize,
}

impl Budget<'_> {
    fn admit(&mut self, name: &str, size: u64) -> Result<()> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(Error::Limit(format!(
                "more than {} files in the package",
                self.limits.max_entries
            )));
        }
        let max = if name == MANIFEST {
            self.limits.max_manifest_bytes
        } else {
            self.limits.max_file_bytes
        };
        if size > max {
            return Err(Error::Limit(format!(
                "`{name}` is {size} bytes; the limit is {max}"
            )));
        }
        self.total = self.total.saturating_add(size);
        if self.total > self.limits.max_total_bytes {
            return Err(Error::Limit(format!(
                "package content exceeds {} bytes",
                self.limits.max_total_bytes
            )));
        }
        Ok(())
    }
}

/// A reader that fails once more than `left` bytes were asked for.
struct Bounded<R> {
    inner: R,
    left: u64,
    hit: bool,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? > 0 {
                self.hit = true;
                return Err(io::Error::other("package too large"));
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads a `.arcanpkg` (gzip'd tar) into memory under `limits`.
pub fn read_archive(pkg: &[u8], limits: &Limits) -> Result<Files> {
    // Content plus tar headers, padding and the end-of-archive record.
    let stream_max = limits
        .max_total_bytes
        .saturating_add((limits.max_entries as u64 + 2) * 1024 + 20 * 1024);
    let mut bounded = Bounded {
        inner: GzDecoder::new(pkg),
        left: stream_max,
        hit: false,
    };
    let result = read_entries(&mut bounded, limits);
    if bounded.hit {
        return Err(Error::Limit(format!(
            "package content exceeds {} bytes",
            limits.max_total_bytes
        )));
    }
    result
}

fn corrupt(e: io::Error) -> Error {
    Error::Corrupt(format!("truncated or not a gzip'd tar archive ({e})"))
}

fn read_entries<R: Read>(stream: &mut Bounded<R>, limits: &Limits) -> Result<Files> {
    let mut files = Files::new();
    let mut budget = Budget {
        limits,
        total: 0,
        entries: 0,
    };
    {
        let mut archive = tar::Archive::new(&mut *stream);
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = entry.header().entry_type();
            if kind != tar::EntryType::Regular {
                return Err(Error::Unsafe(format!(
                    "`{}` is a {}; only regular files are allowed",
                    name.escape_default(),
                    kind_name(kind)
                )));
            }
            check_file_name(&name)?;
            let size = entry.size();
            budget.admit(&name, size)?;
            let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
            (&mut entry)
                .take(size)
                .read_to_end(&mut data)
                .map_err(corrupt)?;
            if data.len() as u64 != size {
                return Err(Error::Corrupt(format!("`{name}` is truncated")));
            }
            if files.insert(name.clone(), data).is_some() {
                return Err(Error::Unsafe(format!("`{name}` appears twice")));
            }
        }
    }
    // Read to the end so that a truncated gzip stream (bad CRC or length) is noticed.
    io::copy(stream, &mut io::sink()).map_err(corrupt)?;
    Ok(files)
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Directory => "directory",
        tar::EntryType::Char | tar::EntryType::Block => "device",
        tar::EntryType::Fifo => "fifo",
        _ => "special entry",
    }
}

/// Writes files as a deterministic gzip'd tar (sorted names, mode 0644, mtime 0).
pub fn write_archive(files: &Files) -> Result<Vec<u8>> {
    let io_err = Error::io("writing the archive");
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    let mut run = || -> io::Result<()> {
        for (name, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_path(name)?;
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            tar.append(&h, data.as_slice())?;
        }
        tar.finish()
    };
    run().map_err(io_err)?;
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .map_err(Error::io("writing the archive"))
}

/// Reads a plugin directory (flat, regular files only) into memory under `limits`.
pub fn read_dir(dir: &Path, limits: &Limits) -> Result<Files> {
    use std::os::unix::fs::MetadataExt;
    let ctx = |what: &str| format!("{what} {}", dir.display());
    let mut files = Files::new();
    let mut budget = Budget {
        limits,
        total: 0,
        entries: 0,
    };
    for e in std::fs::read_dir(dir).map_err(Error::io(ctx("reading")))? {
        let e = e.map_err(Error::io(ctx("reading")))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).map_err(Error::io(ctx("reading")))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            return Err(Error::Unsafe(format!("`{name}` is a symbolic link")));
        }
        if ft.is_dir() {
            return Err(Error::Unsafe(format!(
                "`{name}` is a directory; packages hold flat files only"
            )));
        }
        if !ft.is_file() {
            return Err(Error::Unsafe(format!("`{name}` is not a regular file")));
        }
        check_file_name(&name)?;
        budget.admit(&name, meta.len())?;
        let mut f =
            std::fs::File::open(&path).map_err(Error::io(format!("reading {}", path.display())))?;
        let opened = f
            .metadata()
            .map_err(Error::io(format!("reading {}", path.display())))?;
        if opened.ino() != meta.ino() || opened.dev() != meta.dev() {
            return Err(Error::Unsafe(format!("`{name}` changed while being read")));
        }
        let mut data = Vec::new();
        (&mut f)
            .take(meta.len() + 1)
            .read_to_end(&mut data)
            .map_err(Error::io(format!("reading {}", path.display())))?;
        if data.len() as u64 != meta.len() {
            return Err(Error::Unsafe(format!("`{name}` changed while being read")));
        }
        files.insert(name, data);
    }
    Ok(files)
}
