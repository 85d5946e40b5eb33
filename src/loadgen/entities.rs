//! The concrete values one generated conversation is about (order number, product, e-mail, …),
//! drawn once per trace and pasted into the catalog's `{placeholder}` templates.

const FIRST_NAMES: &[&str] = &[
    "maria", "james", "aisha", "chen", "lukas", "sofia", "omar", "emma", "raj", "olga", "diego",
    "yuki", "fatima", "noah", "ines", "kwame",
];
const LAST_NAMES: &[&str] = &[
    "lopez", "smith", "khan", "wang", "mueller", "rossi", "haddad", "brown", "patel", "ivanova",
    "garcia", "tanaka", "diallo", "johnson", "silva", "mensah",
];
const MAIL_DOMAINS: &[&str] = &["example.com", "mail.example.org", "example.net"];
const PRODUCTS: &[&str] = &[
    "wireless earbuds",
    "Aurora X2 headphones",
    "smart thermostat",
    "espresso machine",
    "trail running shoes",
    "27-inch 4K monitor",
    "mechanical keyboard",
    "air fryer",
    "standing desk",
    "hiking backpack",
    "Pulse smartwatch",
    "bluetooth speaker",
    "robot vacuum",
    "electric toothbrush",
    "camping tent",
    "ergonomic office chair",
];
const CITIES: &[&str] = &[
    "Lyon",
    "Manchester",
    "Austin",
    "Rotterdam",
    "Turin",
    "Leipzig",
    "Porto",
    "Denver",
    "Toronto",
    "Melbourne",
];
const STREETS: &[&str] = &[
    "Maple Street",
    "Rue Victor Hugo",
    "Oak Avenue",
    "Station Road",
    "Via Roma",
    "Hauptstrasse",
    "Kingsway",
    "Elm Court",
];
const PLANS: &[&str] = &["Pro", "Premium", "Team", "Business"];
const COUPONS: &[&str] = &[
    "SPRING15",
    "WELCOME10",
    "FREESHIP",
    "VIP20",
    "SUMMER25",
    "BLACKFRI",
    "LOYAL30",
];
const CARRIERS: &[&str] = &["UPS", "DHL", "FedEx", "USPS", "Colissimo"];
const ETAS: &[&str] = &[
    "tomorrow",
    "on Friday",
    "within 2 days",
    "next Monday",
    "by the end of the week",
];
const DEVICES: &[&str] = &[
    "iPhone 15",
    "Pixel 8",
    "Galaxy S23",
    "iPad Air",
    "MacBook Pro",
    "Windows 11",
    "Chromebook",
];
const ERROR_CODES: &[&str] = &[
    "E-1042",
    "SYNC_TIMEOUT",
    "ERR_403",
    "E-2210",
    "AUTH_EXPIRED",
];
const ORDER_STATUSES: &[&str] = &["shipped", "in transit", "processing", "out for delivery"];
const MONTHS: &[&str] = &["March", "April", "May", "June", "July", "August"];
/// Back ends a failing tool may blame.
const SERVICES: &[&str] = &[
    "orders-api",
    "payments-gateway",
    "accounts-service",
    "billing-db",
    "shipping-partner-api",
];

pub struct Entities {
    values: Vec<(&'static str, String)>,
}

fn pick<'a>(rng: &mut fastrand::Rng, list: &[&'a str]) -> &'a str {
    list[rng.usize(..list.len())]
}

impl Entities {
    pub fn draw(rng: &mut fastrand::Rng) -> Self {
        let first = pick(rng, FIRST_NAMES);
        let last = pick(rng, LAST_NAMES);
        let city = pick(rng, CITIES);
        let capitalized = |s: &str| {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        };
        let values = vec![
            ("order", format!("NW-{:05}", rng.u32(10_000..100_000))),
            ("product", pick(rng, PRODUCTS).to_string()),
            (
                "amount",
                format!(
                    "{}.{}",
                    rng.u32(9..480),
                    pick(rng, &["99", "00", "50", "95"])
                ),
            ),
            ("date", format!("{} {}", pick(rng, MONTHS), rng.u32(1..29))),
            (
                "email",
                format!("{first}.{last}@{}", pick(rng, MAIL_DOMAINS)),
            ),
            (
                "name",
                format!("{} {}", capitalized(first), capitalized(last)),
            ),
            ("account", format!("ACC-{:06}", rng.u32(0..1_000_000))),
            ("plan", pick(rng, PLANS).to_string()),
            ("sub", format!("sub_{:08x}", rng.u32(..))),
            ("coupon", pick(rng, COUPONS).to_string()),
            (
                "address",
                format!("{} {}, {city}", rng.u32(1..240), pick(rng, STREETS)),
            ),
            ("city", city.to_string()),
            ("invoice", format!("INV-2025-{:04}", rng.u32(1..10_000))),
            ("tracking", format!("1Z{:010}", rng.u64(..10_000_000_000))),
            ("carrier", pick(rng, CARRIERS).to_string()),
            ("eta", pick(rng, ETAS).to_string()),
            ("ticket", format!("{:05}", rng.u32(10_000..100_000))),
            ("device", pick(rng, DEVICES).to_string()),
            ("error_code", pick(rng, ERROR_CODES).to_string()),
            ("status", pick(rng, ORDER_STATUSES).to_string()),
            ("service", pick(rng, SERVICES).to_string()),
            ("customer", format!("cust_{:06}", rng.u32(0..1_000_000))),
        ];
        Self { values }
    }

    /// `template` with every `{name}` of a known entity replaced.
    pub fn fill(&self, template: &str) -> String {
        let mut out = template.to_string();
        for (name, value) in &self.values {
            let placeholder = format!("{{{name}}}");
            if out.contains(&placeholder) {
                out = out.replace(&placeholder, value);
            }
        }
        out
    }

    pub fn get(&self, name: &str) -> &str {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}
