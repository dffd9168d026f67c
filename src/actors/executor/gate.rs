//! The quota gate a run passes before its kind's work begins: every quota the job declares
//! consumed all or none (a refusal defers the run until the quota has room, without using an
//! attempt), and the units given back when the run did not happen or failed with
//! `refund_on_failure`.

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::{Ran, NAME};
use crate::actors::quota::{Consume, Consumed, QuotaCounter, QuotaError, RefundReceipt};
use crate::db::quotas::Receipt;
use crate::jobs::run_error::RunErrorKind;
use crate::kinds::RunError;
use crate::quota::JobQuota;

/// Consumes every quota the job declares, all or none: on a refusal, what was taken is
/// returned and the run is deferred until the refusing quota has room again.
pub(super) async fn take_quota(
    quota: &[JobQuota],
    counter: Option<&Addr<QuotaCounter>>,
    now: DateTime<Utc>,
) -> Result<Vec<Receipt>, Ran> {
    let mut receipts = Vec::new();
    for q in quota.iter().filter(|q| q.cost > 0) {
        let Some(counter) = counter else {
            return Err(Ran::Deferred {
                until: now + chrono::Duration::seconds(1),
                reason: "the quota counter is restarting".into(),
            });
        };
        let answer = counter
            .send(Consume {
                quota: q.name.clone(),
                cost: q.cost,
                audit: None,
            })
            .await
            .unwrap_or_else(|_| Err(QuotaError::Unavailable("restarting".into())));
        let deny = match answer {
            Ok(Consumed::Admitted { receipt, .. }) => {
                receipts.push(receipt);
                continue;
            }
            Ok(Consumed::Refused {
                retry_at, blocking, ..
            }) => Ran::Deferred {
                until: retry_at,
                reason: format!(
                    "quota {} exhausted for this {}",
                    q.name,
                    blocking.join(" and ")
                ),
            },
            Err(QuotaError::Unavailable(m)) => Ran::Deferred {
                until: now + chrono::Duration::seconds(1),
                reason: format!("quota counter unavailable: {m}"),
            },
            Err(e) => Ran::Done(Err(RunError::new(RunErrorKind::Quota, e.to_string()))),
        };
        refund_receipts(Some(counter), receipts).await;
        return Err(deny);
    }
    Ok(receipts)
}

/// Returns every receipt's units (the run did not happen).
pub(super) async fn refund_receipts(counter: Option<&Addr<QuotaCounter>>, receipts: Vec<Receipt>) {
    let Some(counter) = counter else { return };
    for r in receipts {
        let _ = counter.send(RefundReceipt(r)).await;
    }
}

/// A failed run returns the units of the quotas that say `refund_on_failure`.
pub(super) async fn refund_on_failure(
    quota: &[JobQuota],
    receipts: Vec<Receipt>,
    counter: Option<&Addr<QuotaCounter>>,
) {
    let Some(counter) = counter else { return };
    for r in receipts {
        if quota
            .iter()
            .any(|q| q.name == r.quota && q.refund_on_failure)
        {
            if let Err(e) = counter
                .send(RefundReceipt(r))
                .await
                .unwrap_or_else(|_| Err(QuotaError::Unavailable("restarting".into())))
            {
                tracing::warn!(actor = NAME, error = %e, "quota refund failed");
            }
        }
    }
}
