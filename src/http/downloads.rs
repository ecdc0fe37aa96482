//! Downloads: a version streamed as an attachment that no browser renders
//! inline, named (file name and revision) so every browser saves it as such.

use poem::http::{StatusCode, header};
use poem::{Body, Response};

use crate::files::Download;

/// Streams a version as an attachment that a browser never renders inline.
pub fn download_response(d: Download) -> Response {
    let Download {
        file_name,
        size,
        mut reader,
        ..
    } = d;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            match std::io::Read::read(&mut reader, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = async_stream::stream! {
        while let Some(chunk) = rx.recv().await {
            yield chunk;
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/octet-stream")
        .header(header::CONTENT_DISPOSITION, content_disposition(&file_name))
        .header(header::CONTENT_LENGTH, size.to_string())
        .header("X-Content-Type-Options", "nosniff")
        .header(header::CACHE_CONTROL, "private, no-cache")
        .header("Content-Security-Policy", "default-src 'none'; sandbox")
        .body(Body::from_bytes_stream(stream))
}

/// `attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266).
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';' | '%') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// A folder's `.zip`, written on a blocking thread into a bounded channel
/// as the client reads: four 64 KiB chunks in flight at most, so memory
/// stays flat however large the folder. An error after the first byte can
/// only cut the stream (the status is sent): it is logged, and the client
/// sees a truncated archive that `unzip` refuses.
pub fn zip_response(zip: crate::files::FolderZip) -> Response {
    const CHUNK: usize = 64 * 1024;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let file_name = zip.file_name.clone();
    tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(CHUNK, ChannelWriter(tx.clone()));
        if let Err(e) = zip.write_to(out) {
            // A client that went away is no fault of the server's.
            if tx.is_closed() {
                tracing::debug!(error = %e, "a folder .zip's client went away");
            } else {
                tracing::warn!(error = %e, "a folder .zip was cut short");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    });
    let stream = async_stream::stream! {
        while let Some(chunk) = rx.recv().await {
            yield chunk;
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/zip")
        .header(header::CONTENT_DISPOSITION, content_disposition(&file_name))
        .header("X-Content-Type-Options", "nosniff")
        .header(header::CACHE_CONTROL, "private, no-cache")
        .body(Body::from_bytes_stream(stream))
}

/// Hands each write to the response stream; fails once the client is gone,
/// which stops the writer.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(buf.to_vec()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
