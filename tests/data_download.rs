//! The CIFAR-10 downloader against a real HTTP server on 127.0.0.1 serving a generated
//! archive in the official layout: a good download is verified and extracted; a checksum
//! mismatch and a connection dropped mid-way are errors that keep nothing; an unreachable
//! server is a clear error.

use flate2::write::GzEncoder;
use kiln::data::{download_and_extract, load_cifar10, CIFAR_RECORD_BYTES};
use md5::{Digest, Md5};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-dl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A tar.gz holding cifar-10-batches-bin/ with 3 records per batch file.
fn archive() -> Vec<u8> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for (b, name) in names.iter().enumerate() {
        let mut data = Vec::new();
        for r in 0..3 {
            data.push(((r + b) % 10) as u8);
            data.extend((0..CIFAR_RECORD_BYTES - 1).map(|p| ((p + r) % 256) as u8));
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("cifar-10-batches-bin/{name}"),
            &data[..],
        )
        .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", Md5::digest(bytes))
}

/// Serves `body` to one request; with `drop_after`, announces the full length but closes the
/// connection after that many bytes. Returns the URL.
fn serve_once(body: Vec<u8>, drop_after: Option<usize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let header = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(header.as_bytes()).unwrap();
        let end = drop_after.unwrap_or(body.len());
        let _ = stream.write_all(&body[..end]);
        let _ = stream.flush();
    });
    format!("http://127.0.0.1:{port}/files/cifar-10-binary.tar.gz")
}

fn files_in(dir: &PathBuf) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_good_download_is_verified_and_extracted() {
    let body = archive();
    let md5 = md5_hex(&body);
    let url = serve_once(body.clone(), None);
    let dir = temp_dir("good");
    let path = download_and_extract(&url, &md5, &dir).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert_eq!(
        files_in(&dir),
        ["cifar-10-batches-bin", "cifar-10-binary.tar.gz"]
    );
    let (train, test) = load_cifar10(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (15, 3));
}

#[test]
fn a_checksum_mismatch_keeps_nothing() {
    let url = serve_once(archive(), None);
    let dir = temp_dir("mismatch");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "kept").unwrap();
    let err = download_and_extract(&url, "00000000000000000000000000000000", &dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("MD5") && err.contains("not kept"), "{err}");
    assert_eq!(
        files_in(&dir),
        ["notes.txt"],
        "only the earlier file remains"
    );
}

#[test]
fn a_dropped_connection_is_an_error_that_keeps_nothing() {
    let body = archive();
    let md5 = md5_hex(&body);
    let url = serve_once(body.clone(), Some(body.len() / 2));
    let dir = temp_dir("dropped");
    let err = download_and_extract(&url, &md5, &dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dropped") || err.contains("closed"), "{err}");
    assert!(err.contains(&format!("of {}", body.len())), "{err}");
    assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    // Bind, note the port, and close it: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp_dir("unreachable");
    let err = download_and_extract(
        &format!("http://127.0.0.1:{port}/cifar-10-binary.tar.gz"),
        "x",
        &dir,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("downloading") && err.contains("network"),
        "{err}"
    );
    assert!(files_in(&dir).is_empty());
}
