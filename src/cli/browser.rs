//! An automated browser for `login --auto-approve`, `dev` and tests: it opens an authorize URL and
//! follows the redirects a provider that approves at once answers (the emulator does), the
//! loopback callback's included.

/// Redirects a login may take: direct, authorize → callback; relayed, proxy → provider → proxy →
/// callback.
const MAX_HOPS: usize = 5;

/// One request the auto-approving "browser" made: its status and its URL without the query (the
/// query may hold a code or states), for printing.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The HTTP status answered.
    pub status: u16,
    /// Scheme, host, port and path of the URL requested.
    pub url: String,
}

/// What a browser does when the provider approves at once: fetch the authorize URL and follow its
/// redirects (at most [`MAX_HOPS`]) until a page answers, the loopback callback's included.
pub async fn approve(url: String) -> Result<Vec<Hop>, String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {}", e.without_url()))?;
    let mut next = reqwest::Url::parse(&url).map_err(|e| format!("not a URL: {e}"))?;
    let mut hops = Vec::new();
    for _ in 0..=MAX_HOPS {
        let answer = http
            .get(next.clone())
            .send()
            .await
            .map_err(|e| format!("request {} failed: {}", hops.len() + 1, e.without_url()))?;
        let mut shown = next.clone();
        shown.set_query(None);
        hops.push(Hop {
            status: answer.status().as_u16(),
            url: shown.to_string(),
        });
        if !answer.status().is_redirection() {
            if hops.len() == 1 {
                return Err(format!(
                    "the authorize endpoint did not redirect (HTTP {}); --auto-approve needs the \
                     emulator",
                    answer.status()
                ));
            }
            return Ok(hops);
        }
        let location = answer
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("HTTP {} without a Location", answer.status()))?;
        next = next
            .join(location)
            .map_err(|e| format!("bad Location: {e}"))?;
    }
    Err(format!("more than {MAX_HOPS} redirects"))
}
