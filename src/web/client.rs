use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use ipnet::IpNet;

use crate::state::AppState;

/// Longest user agent kept with a session.
const MAX_USER_AGENT: usize = 200;

/// Who is asking: the client's address and the browser's own description.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

/// Whether `address` lies in one of the `USHER_TRUSTED_PROXIES` ranges.
/// An IPv4 address a dual-stack socket reports as IPv6 (`::ffff:a.b.c.d`)
/// is compared as IPv4.
pub fn is_trusted_proxy(trusted_proxies: &[IpNet], address: IpAddr) -> bool {
    let address = address.to_canonical();
    trusted_proxies.iter().any(|range| range.contains(&address))
}

/// The peer's address, or, when the peer is a trusted proxy, the last
/// address in `X-Forwarded-For` that is not one of the trusted proxies
/// (what comes before it could be made up by the client).
fn client_ip(req: &HttpRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !is_trusted_proxy(trusted_proxies, peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    Some(forwarded.into_iter().rev().find(|hop| !is_trusted_proxy(trusted_proxies, *hop)).unwrap_or(peer))
}

impl FromRequest for ClientInfo {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trusted: &[IpNet] =
            req.app_data::<web::Data<AppState>>().map_or(&[], |state| &state.config.settings.trusted_proxies);
        let ip = client_ip(req, trusted).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|agent| agent.chars().take(MAX_USER_AGENT).collect())
            .unwrap_or_default();
        ready(Ok(Self { ip, user_agent }))
    }
}
