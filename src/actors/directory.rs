//! The current address of each actor that others message. An actor writes its address here
//! when it (re)starts; senders read it at send time, so a restarted actor is found again.
//! A missing entry means "restarting": the sender tries again later.

use std::sync::{Arc, RwLock};

use actix::Addr;

use super::browser::BrowserPool;
use super::database::DatabaseActor;
use super::executor::Executor;
use super::maintenance::cleaner::Cleaner;
use super::maintenance::rescuer::Rescuer;
use super::quota::QuotaCounter;
use super::scheduler::Scheduler;

#[derive(Clone, Default)]
pub struct Directory {
    inner: Arc<RwLock<Entries>>,
}

#[derive(Default)]
struct Entries {
    scheduler: Option<Addr<Scheduler>>,
    executor: Option<Addr<Executor>>,
    quota: Option<Addr<QuotaCounter>>,
    browser: Option<Addr<BrowserPool>>,
    database: Option<Addr<DatabaseActor>>,
    rescuer: Option<Addr<Rescuer>>,
    cleaner: Option<Addr<Cleaner>>,
    /// Where this node's API listens (known once it is bound): `OVERSEER_API_URL`.
    api_url: Option<String>,
}

impl Directory {
    pub fn api_url(&self) -> Option<String> {
        self.inner.read().ok()?.api_url.clone()
    }
    pub fn set_api_url(&self, url: String) {
        if let Ok(mut e) = self.inner.write() {
            e.api_url = Some(url);
        }
    }
    pub fn scheduler(&self) -> Option<Addr<Scheduler>> {
        self.inner
            .read()
            .ok()?
            .scheduler
            .clone()
            .filter(Addr::connected)
    }
    pub fn executor(&self) -> Option<Addr<Executor>> {
        self.inner
            .read()
            .ok()?
            .executor
            .clone()
            .filter(Addr::connected)
    }
    pub fn quota_counter(&self) -> Option<Addr<QuotaCounter>> {
        self.inner
            .read()
            .ok()?
            .quota
            .clone()
            .filter(Addr::connected)
    }
    pub fn browser_pool(&self) -> Option<Addr<BrowserPool>> {
        self.inner
            .read()
            .ok()?
            .browser
            .clone()
            .filter(Addr::connected)
    }
    /// The database actor, which owns the view of the database's health (`/ready` asks it).
    pub fn database(&self) -> Option<Addr<DatabaseActor>> {
        self.inner
            .read()
            .ok()?
            .database
            .clone()
            .filter(Addr::connected)
    }
    pub fn set_database(&self, addr: Addr<DatabaseActor>) {
        if let Ok(mut e) = self.inner.write() {
            e.database = Some(addr);
        }
    }
    pub fn rescuer(&self) -> Option<Addr<Rescuer>> {
        self.inner
            .read()
            .ok()?
            .rescuer
            .clone()
            .filter(Addr::connected)
    }
    pub fn set_rescuer(&self, addr: Addr<Rescuer>) {
        if let Ok(mut e) = self.inner.write() {
            e.rescuer = Some(addr);
        }
    }
    pub fn cleaner(&self) -> Option<Addr<Cleaner>> {
        self.inner
            .read()
            .ok()?
            .cleaner
            .clone()
            .filter(Addr::connected)
    }
    pub fn set_cleaner(&self, addr: Addr<Cleaner>) {
        if let Ok(mut e) = self.inner.write() {
            e.cleaner = Some(addr);
        }
    }
    pub fn set_browser_pool(&self, addr: Addr<BrowserPool>) {
        if let Ok(mut e) = self.inner.write() {
            e.browser = Some(addr);
        }
    }
    pub fn set_quota_counter(&self, addr: Addr<QuotaCounter>) {
        if let Ok(mut e) = self.inner.write() {
            e.quota = Some(addr);
        }
    }
    pub fn set_scheduler(&self, addr: Addr<Scheduler>) {
        if let Ok(mut e) = self.inner.write() {
            e.scheduler = Some(addr);
        }
    }
    pub fn set_executor(&self, addr: Addr<Executor>) {
        if let Ok(mut e) = self.inner.write() {
            e.executor = Some(addr);
        }
    }
}
