//! Errors from reading, downloading and uploading datasets. Each names the file (and the byte
//! offset where the format is wrong) or the URL, and says what to do when data is missing.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, DataError>;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, byte {offset}: {message}")]
    Format {
        path: PathBuf,
        offset: u64,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("downloading {url} failed: {message}")]
    Download { url: String, message: String },
    #[error(
        "{url}: the download's MD5 is {actual}, the published checksum is {expected}; \
         the file was not kept"
    )]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Tensor(#[from] kiln_tensor::KilnError),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(
        path: impl Into<PathBuf>,
        offset: u64,
        message: impl Into<String>,
    ) -> Self {
        DataError::Format {
            path: path.into(),
            offset,
            message: message.into(),
        }
    }
}
