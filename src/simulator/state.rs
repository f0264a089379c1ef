//! The simulated service's memory: tokens, customers, validation codes, fault dice and the request log.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant, SystemTime};

use super::oauth::opaque;
use super::parse::rfc3339;
use super::quota::{Quota, QuotaPlan};
use super::switches::Switch;
use super::{
    FaultAction, PreloadState, RecordedRequest, SimConfig, SimError, ValidationEntry,
    SANDBOX_REFRESH_TOKEN,
};
use crate::domain::model::{CustomerId, Qualification, QualificationRecord};
use crate::domain::qualification::Field;

/// Customers are spread over this many locks so parallel writers rarely meet.
const SHARDS: usize = 64;
/// The service allows this many vetting requests per customer and qualification.
pub(crate) const MAX_VETTING_ATTEMPTS: u8 = 3;
/// The reason a simulated vetting denial carries.
pub(crate) const DENY_REASON: &str = "Not an Education Customer";

/// Locks a mutex, carrying on after a panic elsewhere: the data is plain and stays consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything the server tasks share.
pub(crate) struct Shared {
    /// The configuration as given, but for its lists (preload, profiles, scripts, validations),
    /// which are taken out into the state below and left empty here.
    pub settings: SimConfig,
    /// The identity platform's device and authorization codes.
    pub oauth: super::oauth::OAuth,
    pub started: Instant,
    pub partner_id: String,
    tokens: RwLock<Tokens>,
    redemptions: AtomicU64,
    shards: Vec<Mutex<HashMap<CustomerId, Customer>>>,
    validations: Mutex<Vec<Validation>>,
    script: Option<Mutex<HashMap<CustomerId, VecDeque<FaultAction>>>>,
    rng: Mutex<fastrand::Rng>,
    quota: Option<Mutex<Quota>>,
    log: Mutex<Vec<RecordedRequest>>,
    /// The customer list and its paging state.
    pub directory: super::customers::Directory,
    /// MFA-required mode (API calls refused with 900421), switchable mid-run.
    pub mfa_required: Switch,
    /// Token endpoint outage (token requests answered 503), switchable mid-run.
    pub token_outage: Switch,
    /// Token endpoint throttling (token requests answered 429 with Retry-After).
    pub token_throttle: Switch,
    /// Answers given, by `MS-RequestId` (see [`super::answered`]).
    pub answered: super::answered::Answered,
}

/// The tokens issued: access tokens with their expiry, and refresh tokens.
#[derive(Default)]
struct Tokens {
    access: HashMap<String, Instant>,
    refresh: HashSet<String>,
}

/// Vetting requests made so far, by [`Qualification::index`].
type Attempts = [u8; Qualification::COUNT];

enum Customer {
    Active { held: Vec<Held>, attempts: Attempts },
    Missing(Missing),
}

struct Held {
    record: QualificationRecord,
    /// The settable qualification the record names, if any (a preloaded `Nonprofit` names none).
    qualification: Option<Qualification>,
    /// Set for Education records the simulator created: when and how their vetting ends.
    pending: Option<Pending>,
}

struct Pending {
    decide_at: Instant,
    deny: bool,
}

struct Validation {
    entry: ValidationEntry,
    version: u64,
}

/// What a create request came to.
pub(crate) enum CreateOutcome {
    /// Vetting requested; the record as the 201 reports it.
    Created(QualificationRecord),
    /// The customer holds the qualification in a state other than Denied.
    AlreadyHeld,
    /// Denied too often: no vetting requests left.
    Exhausted,
    /// The GCC validation code has no creates left.
    NoRemainingCreates,
}

/// Why the partner may not act on a customer at all.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Missing {
    /// The customer tenant does not exist.
    NotFound,
    /// The partner has no relationship with the customer.
    NoRelationship,
}

fn unit_interval(name: &str, value: f64) -> Result<(), SimError> {
    if (0.0..=1.0).contains(&value) {
        return Ok(());
    }
    Err(SimError::Config(format!(
        "{name} must be between 0 and 1, got {value}"
    )))
}

impl Shared {
    /// Builds the state from a configuration, refusing contradictory or out-of-range settings.
    pub fn new(mut config: SimConfig) -> Result<Self, SimError> {
        unit_interval("fault_rate", config.fault_rate)?;
        unit_interval("deny_rate", config.deny_rate)?;
        if !(config.throttle_rate.is_finite() && config.throttle_rate >= 0.0) {
            return Err(SimError::Config(format!(
                "throttle_rate must be a non-negative number, got {}",
                config.throttle_rate
            )));
        }
        let directory = super::customers::Directory::new(
            &config.preload,
            std::mem::take(&mut config.customers),
            config.customer_page_cap,
            std::mem::take(&mut config.list_script),
        );

        let mut shards: Vec<HashMap<CustomerId, Customer>> =
            (0..SHARDS).map(|_| HashMap::new()).collect();
        for entry in std::mem::take(&mut config.preload) {
            let id = entry.customer_id;
            let customer = shards[shard_of(id)]
                .entry(id)
                .or_insert_with(|| match &entry.state {
                    PreloadState::Holds(_) => Customer::Active {
                        held: Vec::new(),
                        attempts: Attempts::default(),
                    },
                    PreloadState::NotFound => Customer::Missing(Missing::NotFound),
                    PreloadState::NoRelationship => Customer::Missing(Missing::NoRelationship),
                });
            match (entry.state, customer) {
                (PreloadState::Holds(record), Customer::Active { held, attempts }) => {
                    // A preloaded holding used up one of its vetting requests.
                    let qualification = Qualification::named(&record.qualification);
                    if let Some(q) = qualification {
                        let slot = &mut attempts[usize::from(q.index())];
                        *slot = slot.saturating_add(1);
                    }
                    held.push(Held {
                        record,
                        qualification,
                        pending: None,
                    });
                }
                (PreloadState::NotFound, Customer::Missing(Missing::NotFound))
                | (PreloadState::NoRelationship, Customer::Missing(Missing::NoRelationship)) => {}
                _ => {
                    return Err(SimError::Config(format!(
                        "preload gives customer {id} contradictory states (NotFound, NoRelationship or holdings)"
                    )))
                }
            }
        }

        let mut script: HashMap<CustomerId, VecDeque<FaultAction>> = HashMap::new();
        for fault in std::mem::take(&mut config.script) {
            let faults = script.entry(fault.customer_id).or_default();
            faults.push_back(fault.action);
        }
        let script = (!script.is_empty()).then(|| Mutex::new(script));

        let quota = if config.throttle_rate > 0.0 {
            // Without a burst given, one second's worth (at least one request; `as` saturates).
            let second = (config.throttle_rate.ceil() as u32).max(1);
            let burst = config.throttle_burst.unwrap_or(second);
            Some(Mutex::new(Quota::new(QuotaPlan {
                rate: config.throttle_rate,
                burst,
                changes: config.throttle_changes.clone(),
            })?))
        } else if !config.throttle_changes.is_empty() {
            return Err(SimError::Config(
                "throttle rate changes need a throttle rate to start from".into(),
            ));
        } else {
            None
        };

        let mut id_rng = fastrand::Rng::with_seed(config.seed);
        let partner_id = uuid::Builder::from_random_bytes(id_rng.u128(..).to_le_bytes())
            .into_uuid()
            .to_string();

        Ok(Shared {
            oauth: Default::default(),
            started: Instant::now(),
            partner_id,
            tokens: Default::default(),
            redemptions: AtomicU64::new(0),
            shards: shards.into_iter().map(Mutex::new).collect(),
            validations: Mutex::new(
                std::mem::take(&mut config.validations)
                    .into_iter()
                    .map(|entry| Validation { entry, version: 1 })
                    .collect(),
            ),
            script,
            rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
            quota,
            log: Mutex::new(Vec::new()),
            directory,
            mfa_required: Switch::new(config.mfa_after),
            token_outage: Switch::new(config.token_outage_after),
            token_throttle: Switch::window(
                config.token_throttle_after,
                config.token_throttle_count,
            ),
            answered: Default::default(),
            settings: config,
        })
    }

    // --- tokens ---

    /// Whether a refresh token may be redeemed: the well-known sandbox one or any the sim issued.
    pub fn refresh_token_valid(&self, token: &str) -> bool {
        token == SANDBOX_REFRESH_TOKEN || self.tokens().refresh.contains(token)
    }

    fn tokens(&self) -> RwLockReadGuard<'_, Tokens> {
        self.tokens.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues a new access and refresh token pair; earlier refresh tokens stay valid, as in AAD.
    pub fn issue_tokens(&self) -> (String, String) {
        let (access, refresh) = (opaque("sim-at-"), opaque("sim-rt-"));
        let now = Instant::now();
        let expires = now.checked_add(self.settings.token_ttl).unwrap_or(now);
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        tokens.access.insert(access.clone(), expires);
        tokens.refresh.insert(refresh.clone());
        self.redemptions.fetch_add(1, Ordering::Relaxed);
        (access, refresh)
    }

    /// Whether an access token was issued here and has not expired.
    pub fn access_token_valid(&self, token: &str) -> bool {
        let tokens = self.tokens();
        tokens
            .access
            .get(token)
            .is_some_and(|e| Instant::now() < *e)
    }

    /// Successful token redemptions so far.
    pub fn redemptions(&self) -> u64 {
        self.redemptions.load(Ordering::Relaxed)
    }

    // --- faults ---

    /// Takes one request from the partner's quota; `Err(wait)` means answer 429.
    pub fn admit(&self) -> Result<(), Duration> {
        self.quota
            .as_ref()
            .map_or(Ok(()), |quota| lock(quota).admit())
    }

    /// Rolls the fault dice: `None` for no fault, `Some(true)` to drop, `Some(false)` for a 503.
    pub fn roll_fault(&self) -> Option<bool> {
        if self.settings.fault_rate <= 0.0 {
            return None;
        }
        let mut rng = lock(&self.rng);
        let hit = rng.f64() < self.settings.fault_rate;
        let drop = rng.bool();
        hit.then_some(drop)
    }

    /// Consumes the next scripted fault for a customer, if one is left.
    pub fn next_scripted(&self, id: CustomerId) -> Option<FaultAction> {
        let script = self.script.as_ref()?;
        lock(script).get_mut(&id).and_then(VecDeque::pop_front)
    }

    // --- validations ---

    /// Whether a GCC validation code names one of the partner's validations.
    pub fn validation_known(&self, code: &str) -> bool {
        lock(&self.validations)
            .iter()
            .any(|v| v.entry.validation_id == code)
    }

    /// The validations as the list endpoint returns them.
    pub fn validations_json(&self) -> serde_json::Value {
        lock(&self.validations)
            .iter()
            .map(|v| {
                serde_json::json!({
                    "partnerId": self.partner_id,
                    "organizationName": v.entry.organization_name,
                    "validationId": v.entry.validation_id,
                    "maxCreates": v.entry.max_creates,
                    "remainingCreates": v.entry.remaining_creates,
                    "eTag": format!("\"{}-{}\"", v.entry.validation_id, v.version),
                })
            })
            .collect()
    }

    // --- customers ---

    fn shard(&self, id: CustomerId) -> MutexGuard<'_, HashMap<CustomerId, Customer>> {
        lock(&self.shards[shard_of(id)])
    }

    /// Whether the customer exists and is related to the partner, without copying its records.
    pub fn standing(&self, id: CustomerId) -> Result<(), Missing> {
        match self.shard(id).get(&id) {
            Some(Customer::Missing(missing)) => Err(*missing),
            _ => Ok(()),
        }
    }

    /// The customer's qualifications, with due vetting decisions applied.
    pub fn read(&self, id: CustomerId) -> Result<Vec<QualificationRecord>, Missing> {
        let now = Instant::now();
        match self.shard(id).get_mut(&id) {
            None => Ok(Vec::new()),
            Some(Customer::Missing(missing)) => Err(*missing),
            Some(Customer::Active { held, .. }) => {
                settle(held, now);
                Ok(held.iter().map(|h| h.record.clone()).collect())
            }
        }
    }

    /// Requests vetting of a qualification, applying the service's business rules.
    ///
    /// `validation_code` is consulted only for qualifications that carry one (GCC), and must
    /// already be known to exist.
    pub fn create(
        &self,
        id: CustomerId,
        qualification: Qualification,
        validation_code: Option<&str>,
    ) -> Result<CreateOutcome, Missing> {
        let now = Instant::now();
        let mut shard = self.shard(id);
        let customer = shard.entry(id).or_insert_with(|| Customer::Active {
            held: Vec::new(),
            attempts: Attempts::default(),
        });
        let (held, attempts) = match customer {
            Customer::Missing(missing) => return Err(*missing),
            Customer::Active { held, attempts } => (held, attempts),
        };
        settle(held, now);
        let mut same = held
            .iter()
            .filter(|h| h.qualification == Some(qualification));
        if same.any(|h| h.record.vetting_status.as_deref() != Some("Denied")) {
            return Ok(CreateOutcome::AlreadyHeld);
        }
        let slot = usize::from(qualification.index());
        if attempts[slot] >= MAX_VETTING_ATTEMPTS {
            return Ok(CreateOutcome::Exhausted);
        }
        if qualification.carries(Field::ValidationCode) {
            // Lock order is always customer shard, then validations, so this cannot deadlock.
            let mut validations = lock(&self.validations);
            let Some(validation) = validations
                .iter_mut()
                .find(|v| Some(v.entry.validation_id.as_str()) == validation_code)
            else {
                return Ok(CreateOutcome::NoRemainingCreates);
            };
            match &mut validation.entry.remaining_creates {
                Some(0) => return Ok(CreateOutcome::NoRemainingCreates),
                Some(n) => *n -= 1,
                None => {}
            }
            validation.version += 1;
        }
        attempts[slot] += 1;

        let education = qualification == Qualification::Education;
        let record = QualificationRecord {
            qualification: qualification.as_str().to_string(),
            // Only Education goes through vetting; the other two are granted on the spot.
            vetting_status: Some(if education { "InReview" } else { "Approved" }.to_string()),
            vetting_reason: None,
            vetting_create_date: Some(rfc3339(SystemTime::now())),
        };
        let pending = education.then(|| Pending {
            decide_at: now + self.settings.vetting_delay,
            deny: self.denies(id),
        });
        // The new request replaces the denied one it retries, so a read shows one live record.
        held.retain(|h| h.qualification != Some(qualification));
        held.push(Held {
            record: record.clone(),
            qualification: Some(qualification),
            pending,
        });
        Ok(CreateOutcome::Created(record))
    }

    /// Whether this customer's Education vetting ends Denied: fixed by seed and customer alone.
    fn denies(&self, id: CustomerId) -> bool {
        if self.settings.deny_rate <= 0.0 {
            return false;
        }
        let v = id.as_u128();
        let mixed = self.settings.seed ^ (v as u64) ^ ((v >> 64) as u64).rotate_left(29);
        fastrand::Rng::with_seed(mixed).f64() < self.settings.deny_rate
    }

    // --- request log ---

    /// Appends one request to the log.
    pub fn record(&self, request: RecordedRequest) {
        lock(&self.log).push(request);
    }

    /// A copy of the log.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).clone()
    }
}

fn shard_of(id: CustomerId) -> usize {
    // GUIDs are random in their low bits, so those spread customers evenly.
    (id.as_u128() as usize) % SHARDS
}

/// Applies vetting decisions that have come due; reads call this instead of a background timer.
fn settle(held: &mut [Held], now: Instant) {
    for h in held.iter_mut() {
        if let Some(p) = h.pending.take_if(|p| now >= p.decide_at) {
            let status = if p.deny { "Denied" } else { "Approved" };
            h.record.vetting_status = Some(status.into());
            // Pending records are the simulator's own, created without a reason.
            h.record.vetting_reason = p.deny.then(|| DENY_REASON.into());
        }
    }
}
