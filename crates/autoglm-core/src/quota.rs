//! Tenant quotas: what a tenant's replicas may hold together (CPU, memory,
//! GPUs, replicas) and how many tokens it may spend through the gateway
//! per UTC day and month. Each absent limit is unlimited. Pure: the local
//! platform admits replicas with [`QuotaLimits::admit`], the cluster driver
//! writes the same limits as a ResourceQuota, the gateway counts tokens.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::service::{Resources, parse_quantity};

/// A tenant's quota, as the API takes and answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// CPU cores all replicas may request together, as a Kubernetes quantity (`"8"`, `"500m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory all replicas may request together, as a Kubernetes quantity (`"32Gi"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// GPUs all replicas may hold together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// Replicas (pods on Kubernetes) the tenant may run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Prompt plus completion tokens per UTC day, through the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    /// Prompt plus completion tokens per UTC calendar month, through the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_month: Option<u64>,
}

/// The token half of a quota, as the gateway enforces it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenQuota {
    /// Tokens per UTC day.
    pub per_day: Option<u64>,
    /// Tokens per UTC calendar month.
    pub per_month: Option<u64>,
}

/// Largest number of replicas or GPUs a quota may name.
pub const MAX_COUNT: u32 = 1_000_000;

impl Quota {
    /// Its token limits, when it has any.
    pub fn tokens(&self) -> Option<TokenQuota> {
        (self.tokens_per_day.is_some() || self.tokens_per_month.is_some()).then_some(TokenQuota {
            per_day: self.tokens_per_day,
            per_month: self.tokens_per_month,
        })
    }

    /// Every field's problem, or the limits in base units.
    pub fn limits(&self) -> Result<QuotaLimits, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut quantity = |field: &str, value: &Option<String>, scale: f64| {
            let value = value.as_deref()?;
            match parse_quantity(value) {
                Ok(v) if v * scale <= u64::MAX as f64 / 2.0 => Some((v * scale).round() as u64),
                Ok(_) => {
                    errors.push(FieldError::new(field, format!("{value} is too large")));
                    None
                }
                Err(e) => {
                    errors.push(FieldError::new(
                        field,
                        format!("{value:?} is not a quantity: {e}"),
                    ));
                    None
                }
            }
        };
        let cpu_millis = quantity("cpu", &self.cpu, 1000.0);
        let memory_bytes = quantity("memory", &self.memory, 1.0);
        for (field, value) in [("gpus", self.gpus), ("replicas", self.replicas)] {
            if let Some(v) = value
                && v > MAX_COUNT
            {
                errors.push(FieldError::new(
                    field,
                    format!("must be at most {MAX_COUNT}, not {v}"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(QuotaLimits {
            cpu_millis,
            memory_bytes,
            gpus: self.gpus.map(u64::from),
            replicas: self.replicas.map(u64::from),
        })
    }
}

/// What replicas hold, in base units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holding {
    /// CPU requested, in millicores.
    pub cpu_millis: u64,
    /// Memory requested, in bytes.
    pub memory_bytes: u64,
    /// GPUs.
    pub gpus: u64,
    /// Replicas.
    pub replicas: u64,
}

impl Holding {
    /// What one replica with `resources` holds (a spec's quantities are
    /// checked when it is saved; an unreadable one counts as nothing).
    pub fn of_replica(resources: Option<&Resources>) -> Holding {
        let quantity = |q: Option<&String>, scale: f64| {
            q.and_then(|q| parse_quantity(q).ok())
                .map_or(0, |v| (v * scale).round() as u64)
        };
        Holding {
            cpu_millis: quantity(resources.and_then(|r| r.cpu.as_ref()), 1000.0),
            memory_bytes: quantity(resources.and_then(|r| r.memory.as_ref()), 1.0),
            gpus: resources.and_then(|r| r.gpu).map_or(0, u64::from),
            replicas: 1,
        }
    }

    /// Both together.
    pub fn plus(self, other: Holding) -> Holding {
        Holding {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
            gpus: self.gpus.saturating_add(other.gpus),
            replicas: self.replicas.saturating_add(other.replicas),
        }
    }

    /// What `n` such replicas hold.
    pub fn times(self, n: u64) -> Holding {
        Holding {
            cpu_millis: self.cpu_millis.saturating_mul(n),
            memory_bytes: self.memory_bytes.saturating_mul(n),
            gpus: self.gpus.saturating_mul(n),
            replicas: self.replicas.saturating_mul(n),
        }
    }

    /// This without `other`.
    pub fn minus(self, other: Holding) -> Holding {
        Holding {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
            gpus: self.gpus.saturating_sub(other.gpus),
            replicas: self.replicas.saturating_sub(other.replicas),
        }
    }
}

/// A quota's limits in base units; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Millicores.
    pub cpu_millis: Option<u64>,
    /// Bytes.
    pub memory_bytes: Option<u64>,
    /// GPUs.
    pub gpus: Option<u64>,
    /// Replicas.
    pub replicas: Option<u64>,
}

/// One of the resources a quota bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaResource {
    /// Replicas.
    Replicas,
    /// CPU.
    Cpu,
    /// Memory.
    Memory,
    /// GPUs.
    Gpus,
}

impl QuotaResource {
    /// As the quota's field names it.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaResource::Replicas => "replicas",
            QuotaResource::Cpu => "cpu",
            QuotaResource::Memory => "memory",
            QuotaResource::Gpus => "gpus",
        }
    }

    /// An amount of it in the quota's words.
    pub fn format(self, amount: u64) -> String {
        match self {
            QuotaResource::Cpu => format_millicores(amount),
            QuotaResource::Memory => format_bytes(amount),
            QuotaResource::Replicas | QuotaResource::Gpus => amount.to_string(),
        }
    }
}

/// Why a replica may not start: the first quota it would exceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "over the tenant's {} quota: the replica needs {}, and {} of {} is left ({} in use)",
    resource.as_str(),
    resource.format(*needs),
    resource.format(limit.saturating_sub(*used)),
    resource.format(*limit),
    resource.format(*used)
)]
pub struct QuotaRefusal {
    /// Which quota.
    pub resource: QuotaResource,
    /// Its limit.
    pub limit: u64,
    /// What the tenant holds now.
    pub used: u64,
    /// What the replica would add.
    pub needs: u64,
}

impl QuotaLimits {
    /// Whether a replica holding `wanted` may start while the tenant holds
    /// `used`: the first quota it would exceed, replicas first.
    pub fn admit(&self, used: Holding, wanted: Holding) -> Result<(), QuotaRefusal> {
        let checks = [
            (
                QuotaResource::Replicas,
                self.replicas,
                used.replicas,
                wanted.replicas,
            ),
            (
                QuotaResource::Cpu,
                self.cpu_millis,
                used.cpu_millis,
                wanted.cpu_millis,
            ),
            (
                QuotaResource::Memory,
                self.memory_bytes,
                used.memory_bytes,
                wanted.memory_bytes,
            ),
            (QuotaResource::Gpus, self.gpus, used.gpus, wanted.gpus),
        ];
        for (resource, limit, used, needs) in checks {
            if let Some(limit) = limit
                && needs > 0
                && used.saturating_add(needs) > limit
            {
                return Err(QuotaRefusal {
                    resource,
                    limit,
                    used,
                    needs,
                });
            }
        }
        Ok(())
    }
}

/// What a tenant holds and has spent, as the API answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QuotaUse {
    /// CPU its replicas request, as a Kubernetes quantity.
    pub cpu: String,
    /// Memory its replicas request, as a Kubernetes quantity.
    pub memory: String,
    /// GPUs its replicas hold.
    pub gpus: u64,
    /// Replicas running or starting.
    pub replicas: u64,
    /// Tokens spent through the gateway since 00:00 UTC.
    pub tokens_today: u64,
    /// Tokens spent through the gateway since the 1st of this month, UTC.
    pub tokens_this_month: u64,
}

impl QuotaUse {
    /// From what the replicas hold and the tokens spent (today, this month).
    pub fn new(held: Holding, tokens: (u64, u64)) -> QuotaUse {
        QuotaUse {
            cpu: format_millicores(held.cpu_millis),
            memory: format_bytes(held.memory_bytes),
            gpus: held.gpus,
            replicas: held.replicas,
            tokens_today: tokens.0,
            tokens_this_month: tokens.1,
        }
    }
}

/// `GET /api/v1/quota` and `/api/v1/tenants/{name}/quota`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TenantQuota {
    /// The tenant.
    pub tenant: String,
    /// Its limits (`{}`: none).
    pub quota: Quota,
    /// What it holds and has spent now.
    pub used: QuotaUse,
}

/// Millicores as Kubernetes writes them: whole cores bare, else `NNNm`.
pub fn format_millicores(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Bytes in the largest binary unit that divides them (`"1536Mi"`, `"2Gi"`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    UNITS
        .iter()
        .find(|(_, size)| bytes >= *size && bytes.is_multiple_of(*size))
        .map_or_else(
            || bytes.to_string(),
            |(unit, size)| format!("{}{unit}", bytes / size),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(cpu: &str, memory: &str, gpu: u32) -> Holding {
        Holding::of_replica(Some(&Resources {
            cpu: Some(cpu.into()),
            memory: Some(memory.into()),
            gpu: Some(gpu),
        }))
    }

    #[test]
    fn a_replica_is_admitted_while_every_quota_has_room() {
        let limits = Quota {
            cpu: Some("2".into()),
            memory: Some("4Gi".into()),
            gpus: Some(1),
            replicas: Some(3),
            ..Quota::default()
        }
        .limits()
        .unwrap();
        let one = replica("500m", "1Gi", 0);
        assert_eq!(limits.admit(Holding::default(), one), Ok(()));
        let used = one.plus(one).plus(one);
        let refusal = limits.admit(used, one).unwrap_err();
        assert_eq!(refusal.resource, QuotaResource::Replicas);
        assert_eq!(
            refusal.to_string(),
            "over the tenant's replicas quota: the replica needs 1, and 0 of 3 is left (3 in use)"
        );
    }

    #[test]
    fn the_refusal_names_the_first_quota_exceeded_and_what_is_left() {
        let limits = Quota {
            cpu: Some("2".into()),
            memory: Some("4Gi".into()),
            gpus: Some(1),
            ..Quota::default()
        }
        .limits()
        .unwrap();
        let used = replica("1500m", "1Gi", 0);
        let refusal = limits.admit(used, replica("1", "1Gi", 0)).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "over the tenant's cpu quota: the replica needs 1, and 500m of 2 is left (1500m in use)"
        );
        let refusal = limits
            .admit(replica("1", "3584Mi", 0), replica("500m", "1Gi", 0))
            .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "over the tenant's memory quota: the replica needs 1Gi, and 512Mi of 4Gi is left (3584Mi in use)"
        );
        let refusal = limits
            .admit(replica("0", "0", 1), replica("0", "0", 1))
            .unwrap_err();
        assert_eq!(refusal.resource, QuotaResource::Gpus);
    }

    #[test]
    fn no_quota_admits_everything_and_zero_admits_only_what_needs_none() {
        let none = Quota::default().limits().unwrap();
        assert_eq!(
            none.admit(replica("64", "1Ti", 8), replica("64", "1Ti", 8)),
            Ok(())
        );
        let no_gpus = Quota {
            gpus: Some(0),
            ..Quota::default()
        }
        .limits()
        .unwrap();
        assert_eq!(
            no_gpus.admit(Holding::default(), replica("1", "1Gi", 0)),
            Ok(())
        );
        assert!(
            no_gpus
                .admit(Holding::default(), replica("1", "1Gi", 1))
                .is_err()
        );
    }

    #[test]
    fn bad_quantities_are_refused_per_field() {
        let errors = Quota {
            cpu: Some("lots".into()),
            memory: Some("-1Gi".into()),
            replicas: Some(MAX_COUNT + 1),
            ..Quota::default()
        }
        .limits()
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(fields, ["cpu", "memory", "replicas"]);
    }

    #[test]
    fn amounts_are_written_as_kubernetes_writes_them() {
        assert_eq!(format_millicores(2000), "2");
        assert_eq!(format_millicores(1500), "1500m");
        assert_eq!(format_bytes(3 << 30), "3Gi");
        assert_eq!(format_bytes(1536 << 20), "1536Mi");
        assert_eq!(format_bytes(0), "0");
        assert_eq!(format_bytes(1000), "1000");
    }
}
