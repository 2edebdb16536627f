//! The request id: taken from the client's `X-Request-Id` when it is a
//! sane token, otherwise generated; visible to every error built while the
//! request is handled (a task-local), so error bodies carry it too.

use warp::http::HeaderMap;

tokio::task_local! {
    static CURRENT: String;
}

pub const HEADER: &str = "x-request-id";

/// The client's id if it is 1–64 characters of `[A-Za-z0-9._-]`, else a new one.
pub fn from_headers(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
}

/// Runs `future` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, future: F) -> F::Output {
    CURRENT.scope(id, future).await
}

/// The id of the request being handled, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_client_ids_and_replaces_others() {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, "trace-42.a_b".parse().unwrap());
        assert_eq!(from_headers(&headers), "trace-42.a_b");
        headers.insert(
            HEADER,
            "bad id\u{7f}".parse().unwrap_or("x y".parse().unwrap()),
        );
        assert_eq!(from_headers(&headers).len(), 32);
        assert_eq!(from_headers(&HeaderMap::new()).len(), 32);
    }
}
