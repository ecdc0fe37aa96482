//! Reading request bodies at the edge: url-encoded forms and multipart
//! uploads, with duplicate and size checks, shared by the HTML and JSON routes.

use std::collections::HashMap;

use poem::web::Multipart;
use tokio::io::AsyncReadExt;

use crate::error::{AppError, AppResult};
use crate::files::Files;
use crate::vault::Spool;

/// Text fields by name; a name given twice is refused, since which one
/// counts would be a guess.
#[derive(Debug, Default)]
pub struct Fields(HashMap<String, String>);

impl Fields {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> AppResult<Fields> {
        let mut map = HashMap::new();
        for (name, value) in pairs {
            if map.contains_key(&name) {
                return Err(AppError::BadRequest(format!(
                    "The field '{name}' was sent twice."
                )));
            }
            map.insert(name, value);
        }
        Ok(Fields(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The field, or an empty string when absent.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    pub fn required(&self, name: &str, label: &str) -> AppResult<&str> {
        match self.get(name) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(AppError::Invalid(format!("The {label} is missing."))),
        }
    }
}

/// A multipart upload: its text fields and the spooled file part.
pub struct Upload {
    pub fields: Fields,
    pub file: Option<(String, Spool)>,
}

impl Upload {
    pub fn take_file(&mut self) -> AppResult<(String, Spool)> {
        self.file.take().ok_or_else(|| {
            AppError::Invalid("No file was attached; choose a file to upload.".into())
        })
    }
}

const MAX_TEXT_FIELD: usize = 64 * 1024;

/// Reads a multipart body: text fields into memory (bounded), the part named
/// `file` streamed to a spool file under the upload limit.
pub async fn read_upload(files: &Files, mut multipart: Multipart) -> AppResult<Upload> {
    let malformed = |e: poem::error::ParseMultipartError| {
        AppError::BadRequest(format!("The upload is malformed: {e}"))
    };
    let mut pairs = Vec::new();
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            if file.is_some() {
                return Err(AppError::BadRequest(
                    "The field 'file' was sent twice.".into(),
                ));
            }
            let file_name = field.file_name().unwrap_or("").to_string();
            let spool = files.spool(field.into_async_read()).await?;
            file = Some((file_name, spool));
        } else {
            let mut value = Vec::new();
            let mut limited = field.into_async_read().take(MAX_TEXT_FIELD as u64 + 1);
            limited
                .read_to_end(&mut value)
                .await
                .map_err(|e| AppError::BadRequest(format!("The upload was cut off: {e}")))?;
            if value.len() > MAX_TEXT_FIELD {
                return Err(AppError::TooLarge(format!(
                    "The field '{name}' is too long."
                )));
            }
            let value = String::from_utf8(value).map_err(|_| {
                AppError::BadRequest(format!("The field '{name}' is not valid UTF-8 text."))
            })?;
            pairs.push((name, value));
        }
    }
    Ok(Upload {
        fields: Fields::from_pairs(pairs)?,
        file,
    })
}

/// Parses an `application/x-www-form-urlencoded` body.
pub fn parse_urlencoded(body: &[u8]) -> AppResult<Fields> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| AppError::BadRequest("The form is malformed or not valid UTF-8.".into()))?;
    Fields::from_pairs(pairs)
}
