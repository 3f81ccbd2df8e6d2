//! Downloading the CIFAR-10 binary archive: streamed to a temporary file beside its final
//! name while its MD5 is computed and a progress bar (or, off a terminal, a line every 10 %)
//! shows the bytes; renamed into place only when the checksum matches the published one;
//! then extracted (regular files only) into the data directory. A failure of any step
//! removes what it wrote and leaves earlier files untouched.

use crate::error::{DataError, Result};
use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// The checksum published on https://www.cs.toronto.edu/~kriz/cifar.html.
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

/// Downloads and extracts the official archive into `data_dir` (giving
/// `data_dir/cifar-10-batches-bin/`), unless the batches are already there.
pub fn download_cifar10(data_dir: &Path) -> Result<()> {
    if data_dir
        .join("cifar-10-batches-bin")
        .join("test_batch.bin")
        .is_file()
    {
        return Ok(());
    }
    download_and_extract(CIFAR10_URL, CIFAR10_MD5, data_dir)?;
    Ok(())
}

/// Removes a temporary path when dropped unless disarmed.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Downloads `url` into `dir` (named after the URL's last segment), checks its MD5 against
/// `md5_hex`, and extracts the tar.gz archive into `dir`. Returns the archive's path.
pub fn download_and_extract(url: &str, md5_hex: &str, dir: &Path) -> Result<PathBuf> {
    let name = url
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("download");
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let archive = dir.join(name);
    let partial = dir.join(format!(".{name}.part-{}", std::process::id()));
    let mut cleanup = Cleanup(Some(partial.clone()));
    let actual = fetch(url, &partial)?;
    if !actual.eq_ignore_ascii_case(md5_hex) {
        return Err(DataError::Checksum {
            url: url.into(),
            expected: md5_hex.into(),
            actual,
        });
    }
    std::fs::rename(&partial, &archive).map_err(|e| DataError::io(&archive, e))?;
    cleanup.0 = None;
    extract(&archive, dir)?;
    Ok(archive)
}

/// Streams `url` into `path`; returns the MD5 of what was received.
fn fetch(url: &str, path: &Path) -> Result<String> {
    let failed = |message: String| DataError::Download {
        url: url.into(),
        message,
    };
    let mut config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_per_read(Some(Duration::from_secs(60)));
    // A proxy from the environment applies to remote hosts; loopback is always direct.
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
    if loopback.iter().any(|prefix| url.starts_with(prefix)) {
        config = config.proxy(None);
    }
    let agent: ureq::Agent = config.build().into();
    let response = agent.get(url).call().map_err(|e| {
        failed(format!(
            "{e}. Check the network connection, or download the archive by hand and \
             extract it into the data directory"
        ))
    })?;
    let expected_len = response.body().content_length();
    let mut body = response.into_body().into_reader();
    let mut file = File::create(path).map_err(|e| DataError::io(path, e))?;
    let progress = Progress::new(expected_len);
    let mut hasher = Md5::new();
    let mut received = 0u64;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = body.read(&mut buffer).map_err(|e| {
            failed(format!(
                "the connection dropped after {received} bytes{} ({e})",
                expected_len.map_or(String::new(), |l| format!(" of {l}"))
            ))
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n])
            .map_err(|e| DataError::io(path, e))?;
        received += n as u64;
        progress.set(received);
    }
    progress.finish();
    if let Some(len) = expected_len {
        if received != len {
            return Err(failed(format!(
                "the connection closed after {received} of {len} bytes"
            )));
        }
    }
    file.sync_all().map_err(|e| DataError::io(path, e))?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// A progress bar on a terminal, a line per 10 % otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: Option<u64>,
    last_tenth: std::cell::Cell<u64>,
}

impl Progress {
    fn new(total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total.unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "downloading {bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            bar,
            total,
            last_tenth: std::cell::Cell::new(0),
        }
    }

    fn set(&self, received: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(received);
        } else if let Some(total) = self.total.filter(|&t| t > 0) {
            let tenth = received * 10 / total;
            if tenth > self.last_tenth.get() {
                self.last_tenth.set(tenth);
                eprintln!("downloaded {received} of {total} bytes ({}%)", tenth * 10);
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Extracts the regular files and directories of a tar.gz archive into `dir`, through a
/// temporary directory so that a corrupt archive leaves `dir` as it was.
fn extract(archive: &Path, dir: &Path) -> Result<()> {
    let staging = dir.join(format!(".extract-{}", std::process::id()));
    let _cleanup = Cleanup(Some(staging.clone()));
    std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = tar.entries().map_err(|e| DataError::io(archive, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| DataError::io(archive, e))?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        // unpack_in refuses paths that would leave the staging directory.
        entry
            .unpack_in(&staging)
            .map_err(|e| DataError::io(archive, e))?;
    }
    let tops = std::fs::read_dir(&staging).map_err(|e| DataError::io(&staging, e))?;
    for top in tops {
        let top = top.map_err(|e| DataError::io(&staging, e))?;
        let target = dir.join(top.file_name());
        if target.is_dir() {
            std::fs::remove_dir_all(&target).map_err(|e| DataError::io(&target, e))?;
        }
        std::fs::rename(top.path(), &target).map_err(|e| DataError::io(&target, e))?;
    }
    Ok(())
}
