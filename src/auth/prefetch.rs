//! What a page needs from the database besides the session, read in the
//! session load's own trip to a database thread, so a signed-in page costs
//! one trip instead of two.
//!
//! actix-session's store sees only the session key. So a middleware outside
//! the session middleware, which knows the route, names the page's needs
//! with [`PageNeeds::serve`]; the store reads them ([`PageNeeds::current`]),
//! loads the data with the session, and leaves it in a slot the request
//! carries, where the page takes it ([`Prefetched::take`]). A page that finds
//! nothing there (another route, no session) reads for itself.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use actix_web::{HttpMessage, HttpRequest};

use crate::db::DbConnection;
use crate::db::email_changes;
use crate::db::sessions::{self, AccountOverview};

/// The data a page may ask to have read with its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageNeed {
    /// `GET /account`: the account's live sessions and its pending change
    /// of address.
    AccountOverview,
}

/// Data read with the session, for the page that asked.
#[derive(Debug)]
pub enum PageData {
    /// For [`PageNeed::AccountOverview`].
    AccountOverview(AccountOverview),
}

impl PageNeed {
    /// Reads what this need names for account `user_id` at `now` (unix
    /// seconds), on the session load's connection.
    ///
    /// # Errors
    /// The database's.
    pub fn fetch(self, conn: &mut DbConnection, user_id: i64, now: i64) -> diesel::QueryResult<PageData> {
        match self {
            Self::AccountOverview => Ok(PageData::AccountOverview(AccountOverview {
                sessions: sessions::list_live_for_user(conn, user_id, now)?,
                pending_change: email_changes::pending_for(conn, user_id, now)?,
            })),
        }
    }
}

/// One request's need and, once the session is loaded, its data.
#[derive(Debug)]
struct Slot {
    need: PageNeed,
    data: RefCell<Option<PageData>>,
}

tokio::task_local! {
    static PAGE_NEEDS: Rc<Slot>;
}

/// The needs of the request being served, as the session store sees them.
#[derive(Clone, Debug)]
pub struct PageNeeds(Rc<Slot>);

impl PageNeeds {
    /// Needs `need`, with an empty slot for its data. The request should
    /// carry a clone in its extensions, for the page to take the data from.
    pub fn new(need: PageNeed) -> Self {
        Self(Rc::new(Slot { need, data: RefCell::new(None) }))
    }

    /// Serves `future` (the rest of the request, session load included)
    /// with these needs named.
    pub async fn serve<F: Future>(self, future: F) -> F::Output {
        PAGE_NEEDS.scope(self.0, future).await
    }

    /// The needs named for the request being served, if any.
    pub fn current() -> Option<Self> {
        PAGE_NEEDS.try_with(|slot| Self(slot.clone())).ok()
    }

    /// What the page needs.
    pub fn need(&self) -> PageNeed {
        self.0.need
    }

    /// Hands the data read with the session to the page.
    pub fn fill(&self, data: PageData) {
        *self.0.data.borrow_mut() = Some(data);
    }
}

/// The page's side: what the session load read for it.
pub struct Prefetched;

impl Prefetched {
    /// The account overview read with this request's session, once; `None`
    /// when it was not read (the page then reads it itself).
    pub fn take(req: &HttpRequest) -> Option<AccountOverview> {
        let needs = req.extensions().get::<PageNeeds>().cloned()?;
        let data = needs.0.data.borrow_mut().take();
        match data? {
            PageData::AccountOverview(overview) => Some(overview),
        }
    }
}
