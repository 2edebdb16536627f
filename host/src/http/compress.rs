//! Gzip for JSON responses over a size threshold, when the client accepts it.

use std::io::Write;

use bytes::Bytes;
use http_body_util::BodyExt;
use warp::Reply;
use warp::http::{HeaderMap, HeaderValue, header};
use warp::reply::Response;

/// Whether the request's `Accept-Encoding` admits gzip.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Compresses a JSON (or NDJSON) response of at least `min_bytes`;
/// anything else passes through untouched.
pub async fn gzip_json(response: Response, min_bytes: usize) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/json") || v.starts_with("application/x-ndjson")
        });
    if !is_json || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    // A streamed body (an export) has no exact size: it is compressed as
    // it goes, since gathering it first would hold it all in memory.
    if hyper::body::Body::size_hint(response.body())
        .exact()
        .is_none()
    {
        let (mut parts, body) = response.into_parts();
        mark_gzipped(&mut parts.headers);
        let compressed = warp::reply::stream(GzipStream {
            body,
            encoder: Some(encoder(0)),
        })
        .into_response()
        .into_body();
        return Response::from_parts(parts, compressed);
    }
    let (mut parts, body) = response.into_parts();
    let bytes: Bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::error!(%error, "reading a response body to compress it");
            return Response::from_parts(parts, Bytes::new().into());
        }
    };
    if bytes.len() < min_bytes {
        return Response::from_parts(parts, bytes.into());
    }
    let mut encoder = encoder(bytes.len() / 4);
    if encoder.write_all(&bytes).is_err() {
        return Response::from_parts(parts, bytes.into());
    }
    let Ok(compressed) = encoder.finish() else {
        return Response::from_parts(parts, bytes.into());
    };
    mark_gzipped(&mut parts.headers);
    Response::from_parts(parts, compressed.into())
}

fn encoder(capacity: usize) -> flate2::write::GzEncoder<Vec<u8>> {
    flate2::write::GzEncoder::new(Vec::with_capacity(capacity), flate2::Compression::fast())
}

fn mark_gzipped(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.remove(header::CONTENT_LENGTH);
    headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
}

/// A response body gzipped chunk by chunk: each chunk is handed to the
/// encoder and whatever compressed bytes it has produced go out, so memory
/// stays at the encoder's window whatever the body's length.
struct GzipStream<B> {
    body: B,
    /// `None` once the trailer is out.
    encoder: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl<B> warp::Stream for GzipStream<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        loop {
            let Some(encoder) = self.encoder.as_mut() else {
                return Poll::Ready(None);
            };
            // Compressed bytes already produced go out first.
            if !encoder.get_ref().is_empty() {
                return Poll::Ready(Some(Ok(Bytes::from(std::mem::take(encoder.get_mut())))));
            }
            match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data()
                        && let Some(encoder) = self.encoder.as_mut()
                        && let Err(error) = encoder.write_all(&data)
                    {
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    return Poll::Ready(Some(Err(std::io::Error::other(error))));
                }
                Poll::Ready(None) => {
                    let encoder = self.encoder.take().expect("checked above");
                    return Poll::Ready(Some(encoder.finish().map(Bytes::from)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_accept_encoding() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_gzip(&headers));
        headers.insert(header::ACCEPT_ENCODING, "br, gzip;q=0.8".parse().unwrap());
        assert!(accepts_gzip(&headers));
        headers.insert(header::ACCEPT_ENCODING, "gzip;q=0, br".parse().unwrap());
        assert!(!accepts_gzip(&headers));
    }
}
