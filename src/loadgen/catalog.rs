//! What the generated support agent talks about: a dozen customer intents, each with several
//! paraphrased openers, the tools the agent calls (arguments and results as JSON templates),
//! the agent's answers and follow-up turns; plus off-topic requests for `no_match` testing.
//!
//! Templates hold `{entity}` placeholders (see `Entities`) filled per trace, so two traces of
//! one intent rarely read the same. Entity values never contain `"` or `\`, so they can be
//! pasted into the JSON templates as they are.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intent {
    Refund,
    OrderStatus,
    PasswordReset,
    CancelSubscription,
    ShippingAddressChange,
    BillingDispute,
    ProductQuestion,
    TechnicalBugReport,
    AccountDeletion,
    UpgradePlan,
    DeliveryDamage,
    CouponNotWorking,
    /// Not a support request at all (poems, trivia, …): should classify as `no_match`.
    OffTopic,
}

impl Intent {
    pub const SUPPORT: [Intent; 12] = [
        Intent::Refund,
        Intent::OrderStatus,
        Intent::PasswordReset,
        Intent::CancelSubscription,
        Intent::ShippingAddressChange,
        Intent::BillingDispute,
        Intent::ProductQuestion,
        Intent::TechnicalBugReport,
        Intent::AccountDeletion,
        Intent::UpgradePlan,
        Intent::DeliveryDamage,
        Intent::CouponNotWorking,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Intent::Refund => "refund",
            Intent::OrderStatus => "order_status",
            Intent::PasswordReset => "password_reset",
            Intent::CancelSubscription => "cancel_subscription",
            Intent::ShippingAddressChange => "shipping_address_change",
            Intent::BillingDispute => "billing_dispute",
            Intent::ProductQuestion => "product_question",
            Intent::TechnicalBugReport => "technical_bug_report",
            Intent::AccountDeletion => "account_deletion",
            Intent::UpgradePlan => "upgrade_plan",
            Intent::DeliveryDamage => "delivery_damage",
            Intent::CouponNotWorking => "coupon_not_working",
            Intent::OffTopic => "off_topic",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sentiment {
    Happy,
    Neutral,
    Angry,
    /// Praise and complaint in one message.
    Mixed,
}

impl Sentiment {
    pub const ALL: [Sentiment; 4] = [
        Sentiment::Happy,
        Sentiment::Neutral,
        Sentiment::Angry,
        Sentiment::Mixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Sentiment::Happy => "happy",
            Sentiment::Neutral => "neutral",
            Sentiment::Angry => "angry",
            Sentiment::Mixed => "mixed",
        }
    }

    /// Openings; one ending in a space without punctuation continues the request in lower case.
    pub fn prefixes(self) -> &'static [&'static str] {
        match self {
            Sentiment::Happy => &[
                "Hi there! ",
                "Hello :) ",
                "Hey, hope your day is going well! ",
                "Good morning! ",
            ],
            Sentiment::Neutral => &["", "Hi. ", "Hello, ", "Hi, quick question. "],
            Sentiment::Angry => &[
                "This is ridiculous. ",
                "I am extremely frustrated. ",
                "Third time I'm contacting you about this! ",
                "Honestly, your service is a joke. ",
            ],
            Sentiment::Mixed => &[
                "I usually love shopping with you, but ",
                "Your app is great, however ",
                "Delivery was fast as always, but ",
                "Not trying to complain, but ",
            ],
        }
    }

    pub fn suffixes(self) -> &'static [&'static str] {
        match self {
            Sentiment::Happy => &[
                " Thanks so much!",
                " You folks are great, thank you!",
                " Appreciate it!",
                "",
            ],
            Sentiment::Neutral => &["", " Thanks.", " Regards.", ""],
            Sentiment::Angry => &[
                " Fix this now.",
                " Unacceptable.",
                " Sort this out today or I'm taking my business elsewhere.",
                " I want a real answer this time.",
            ],
            Sentiment::Mixed => &[
                " Otherwise I'm a happy customer.",
                " Still a fan, just annoyed.",
                " Hope you can help, it's been a bit of a hassle.",
                "",
            ],
        }
    }

    /// How the agent opens its answer to this customer.
    pub fn agent_openers(self) -> &'static [&'static str] {
        match self {
            Sentiment::Happy => &["Happy to help! ", "Thanks for reaching out! ", ""],
            Sentiment::Neutral => &["", "Sure. ", "Thanks for the details. "],
            Sentiment::Angry => &[
                "I'm really sorry for the trouble. ",
                "I understand your frustration and I apologize. ",
                "I'm sorry this has taken so long. ",
            ],
            Sentiment::Mixed => &[
                "Thanks for your patience, and sorry about the hassle. ",
                "Glad you're enjoying the service, and sorry about this. ",
            ],
        }
    }

    /// The customer's last message in a multi-turn conversation.
    pub fn closings(self) -> &'static [&'static str] {
        match self {
            Sentiment::Happy => &["Perfect, thank you so much!", "Awesome, you're the best!"],
            Sentiment::Neutral => &["Ok, thanks.", "Understood.", "Got it, thanks."],
            Sentiment::Angry => &[
                "Fine. It shouldn't have taken this long.",
                "Whatever. I expect this to actually happen this time.",
            ],
            Sentiment::Mixed => &[
                "Ok, thanks, though I hope this doesn't happen again.",
                "Alright, appreciated, it was a bit of a hassle though.",
            ],
        }
    }
}

/// One tool call: its name and the JSON templates of its arguments and result.
pub struct ToolStep {
    pub name: &'static str,
    pub arguments: &'static str,
    pub result: &'static str,
}

pub struct IntentSpec {
    pub intent: Intent,
    pub openers: &'static [&'static str],
    /// Called in order; a support request uses one or two.
    pub tools: &'static [ToolStep],
    pub answers: &'static [&'static str],
    /// (customer, agent) pairs for a second turn.
    pub follow_ups: &'static [(&'static str, &'static str)],
}

const GET_ORDER: ToolStep = ToolStep {
    name: "get_order",
    arguments: r#"{"order_id":"{order}"}"#,
    result: r#"{"order_id":"{order}","status":"{status}","items":[{"name":"{product}","qty":1,"price":{amount}}],"carrier":"{carrier}","tracking":"{tracking}","placed":"{date}"}"#,
};
const LOOKUP_ACCOUNT: ToolStep = ToolStep {
    name: "lookup_account",
    arguments: r#"{"email":"{email}"}"#,
    result: r#"{"account_id":"{account}","email":"{email}","name":"{name}","verified":true}"#,
};
const GET_SUBSCRIPTION: ToolStep = ToolStep {
    name: "get_subscription",
    arguments: r#"{"email":"{email}"}"#,
    result: r#"{"subscription_id":"{sub}","plan":"{plan}","renews":"{date}","price":{amount}}"#,
};

pub const SUPPORT_INTENTS: &[IntentSpec] = &[
    IntentSpec {
        intent: Intent::Refund,
        openers: &[
            "I'd like a refund for order {order}, the {product} isn't what I expected.",
            "Can I get my money back for the {product}? Order number {order}.",
            "I returned the {product} from order {order} last week and still have no refund.",
            "Please refund order {order}. The {product} stopped working after two days.",
        ],
        tools: &[
            GET_ORDER,
            ToolStep {
                name: "issue_refund",
                arguments: r#"{"order_id":"{order}","amount":{amount},"reason":"customer_request"}"#,
                result: r#"{"refund_id":"RF-{ticket}","amount":{amount},"status":"processing","eta_days":5}"#,
            },
        ],
        answers: &[
            "I've issued a refund of ${amount} for order {order}. It should reach your card within 5 business days.",
            "Your refund of ${amount} for the {product} is being processed; expect it in about 5 business days.",
        ],
        follow_ups: &[
            (
                "Will I get an email confirmation?",
                "Yes, a confirmation for refund RF-{ticket} is on its way to {email}.",
            ),
            (
                "Do I need to send the {product} back?",
                "No need, keep it or recycle it. The refund is already processing.",
            ),
        ],
    },
    IntentSpec {
        intent: Intent::OrderStatus,
        openers: &[
            "Where is my order {order}? It was supposed to arrive by {date}.",
            "Can you check the status of order {order}?",
            "My {product} hasn't shown up yet, order {order}. Any update?",
            "Tracking for order {order} hasn't moved in days, what's going on?",
        ],
        tools: &[
            GET_ORDER,
            ToolStep {
                name: "track_shipment",
                arguments: r#"{"carrier":"{carrier}","tracking":"{tracking}"}"#,
                result: r#"{"tracking":"{tracking}","last_scan":"{city} sorting center","eta":"{eta}"}"#,
            },
        ],
        answers: &[
            "Order {order} is with {carrier} and was last scanned at the {city} sorting center; estimated delivery is {eta}.",
            "Your {product} is on its way with {carrier} (tracking {tracking}) and should arrive {eta}.",
        ],
        follow_ups: &[(
            "Can they leave it with a neighbour if I'm out?",
            "I've added a note for {carrier} to leave the parcel with a neighbour if nobody is home.",
        )],
    },
    IntentSpec {
        intent: Intent::PasswordReset,
        openers: &[
            "I can't log in, I forgot my password. My email is {email}.",
            "Please help me reset my password for {email}.",
            "The password reset link never arrives at {email}.",
            "I'm locked out of my account ({email}) after too many login attempts.",
        ],
        tools: &[
            LOOKUP_ACCOUNT,
            ToolStep {
                name: "send_password_reset",
                arguments: r#"{"account_id":"{account}","email":"{email}"}"#,
                result: r#"{"sent":true,"expires_in_minutes":30}"#,
            },
        ],
        answers: &[
            "I've sent a new password reset link to {email}; it's valid for 30 minutes.",
            "A reset email is on its way to {email}. Check your spam folder if it isn't there in a few minutes.",
        ],
        follow_ups: &[(
            "Got it, but can you also unlock the account?",
            "Done, the lock on account {account} is lifted, you can sign in once you've set the new password.",
        )],
    },
    IntentSpec {
        intent: Intent::CancelSubscription,
        openers: &[
            "I want to cancel my {plan} subscription. Account {email}.",
            "How do I stop my membership from renewing on {date}?",
            "Please cancel my subscription, I don't use it anymore. Email {email}.",
            "Cancel the {plan} plan for {email} effective immediately.",
        ],
        tools: &[
            GET_SUBSCRIPTION,
            ToolStep {
                name: "cancel_subscription",
                arguments: r#"{"subscription_id":"{sub}","at_period_end":true}"#,
                result: r#"{"subscription_id":"{sub}","status":"canceled","access_until":"{date}"}"#,
            },
        ],
        answers: &[
            "Your {plan} subscription is cancelled; you keep access until {date} and won't be charged again.",
            "Done: subscription {sub} won't renew. You can keep using it until {date}.",
        ],
        follow_ups: &[(
            "Can I get a partial refund for the remaining time?",
            "Plans are billed per period, so there's no partial refund, but you keep full access until {date}.",
        )],
    },
    IntentSpec {
        intent: Intent::ShippingAddressChange,
        openers: &[
            "I need to change the delivery address for order {order} to {address}.",
            "I moved! Can you ship order {order} to {address} instead?",
            "Wrong address on order {order}, it should go to {address}.",
            "Please update the shipping address of my {product} order to {address}.",
        ],
        tools: &[
            GET_ORDER,
            ToolStep {
                name: "update_shipping_address",
                arguments: r#"{"order_id":"{order}","address":"{address}"}"#,
                result: r#"{"order_id":"{order}","address":"{address}","updated":true}"#,
            },
        ],
        answers: &[
            "Order {order} will now be delivered to {address}.",
            "I've updated the shipping address to {address}; the {product} hasn't left the warehouse yet, so it'll go there.",
        ],
        follow_ups: &[(
            "Does that change the delivery date?",
            "It may add a day; the new estimate is {eta}.",
        )],
    },
    IntentSpec {
        intent: Intent::BillingDispute,
        openers: &[
            "I was charged ${amount} twice this month, invoice {invoice}.",
            "There's a charge of ${amount} on my card I don't recognize. Account {email}.",
            "Invoice {invoice} is wrong, I was billed for the {plan} plan but I'm on Basic.",
            "Why did you charge me ${amount} on {date}? I want this disputed.",
        ],
        tools: &[
            ToolStep {
                name: "get_invoices",
                arguments: r#"{"email":"{email}","limit":3}"#,
                result: r#"[{"invoice_id":"{invoice}","amount":{amount},"date":"{date}","status":"paid"},{"invoice_id":"{invoice}-B","amount":{amount},"date":"{date}","status":"paid"}]"#,
            },
            ToolStep {
                name: "open_billing_dispute",
                arguments: r#"{"invoice_id":"{invoice}","amount":{amount},"reason":"duplicate_or_incorrect_charge"}"#,
                result: r#"{"dispute_id":"BD-{ticket}","status":"open","resolution_days":7}"#,
            },
        ],
        answers: &[
            "I've opened billing dispute BD-{ticket} for ${amount} on invoice {invoice}; billing will resolve it within 7 days.",
            "You're right, the ${amount} charge on {date} looks duplicated. Dispute BD-{ticket} is open and you'll hear back within a week.",
        ],
        follow_ups: &[(
            "Will the money come back to the same card?",
            "Yes, any correction is credited to the card used for invoice {invoice}.",
        )],
    },
    IntentSpec {
        intent: Intent::ProductQuestion,
        openers: &[
            "Does the {product} work with {device}?",
            "What's the battery life of the {product}?",
            "Is the {product} waterproof? Thinking of buying one.",
            "What's the difference between the {product} and the Pro version?",
        ],
        tools: &[ToolStep {
            name: "get_product_details",
            arguments: r#"{"query":"{product}"}"#,
            result: r#"{"product":"{product}","compatible":["{device}","Windows","macOS"],"battery_hours":18,"water_resistance":"IPX4","price":{amount}}"#,
        }],
        answers: &[
            "Yes, the {product} works with {device}. It has about 18 hours of battery and is splash-resistant (IPX4).",
            "The {product} costs ${amount}, runs about 18 hours per charge and supports {device}, Windows and macOS.",
        ],
        follow_ups: &[(
            "Is it in stock for delivery to {city}?",
            "It's in stock and ships to {city} within 2 days.",
        )],
    },
    IntentSpec {
        intent: Intent::TechnicalBugReport,
        openers: &[
            "The app crashes every time I open the checkout page on {device}.",
            "I get error {error_code} when I try to sync my {product}.",
            "Your website shows a blank page after login since the last update.",
            "Bug report: notifications stopped working on {device} after updating the app.",
        ],
        tools: &[
            ToolStep {
                name: "search_known_issues",
                arguments: r#"{"query":"{error_code} {device}"}"#,
                result: r#"{"matches":[{"id":"KI-{ticket}","title":"Crash on {device} after update","status":"fix in progress"}]}"#,
            },
            ToolStep {
                name: "create_support_ticket",
                arguments: r#"{"summary":"{error_code} on {device}","severity":"high","email":"{email}"}"#,
                result: r#"{"ticket_id":"T-{ticket}","status":"open","team":"mobile"}"#,
            },
        ],
        answers: &[
            "This is a known issue (KI-{ticket}) and a fix is in progress. I've opened ticket T-{ticket} so you're notified when it ships.",
            "Thanks for the report. Engineering is already working on it; your ticket is T-{ticket}. Reinstalling the app works around it for now.",
        ],
        follow_ups: &[(
            "Any idea when the fix will be out?",
            "The fix is planned for the next release, usually within two weeks.",
        )],
    },
    IntentSpec {
        intent: Intent::AccountDeletion,
        openers: &[
            "Please delete my account and all my data. Email {email}.",
            "I want to close my account permanently ({email}).",
            "GDPR request: erase everything you have on {email}.",
            "How do I remove my account? I don't want to receive anything anymore.",
        ],
        tools: &[
            LOOKUP_ACCOUNT,
            ToolStep {
                name: "request_account_deletion",
                arguments: r#"{"account_id":"{account}","erase_personal_data":true}"#,
                result: r#"{"request_id":"DEL-{ticket}","scheduled":"{date}","status":"pending"}"#,
            },
        ],
        answers: &[
            "Your account {account} is scheduled for deletion on {date}, including all personal data (request DEL-{ticket}).",
            "Deletion request DEL-{ticket} is confirmed; everything tied to {email} will be erased by {date}.",
        ],
        follow_ups: &[(
            "Can I change my mind before then?",
            "Yes, just sign in before {date} and the deletion is cancelled.",
        )],
    },
    IntentSpec {
        intent: Intent::UpgradePlan,
        openers: &[
            "I'd like to upgrade to the {plan} plan.",
            "How much is it to move from Basic to {plan}? Account {email}.",
            "Can I upgrade my subscription mid-cycle to {plan}?",
            "Switch me to {plan} please, I need more seats for my team.",
        ],
        tools: &[
            GET_SUBSCRIPTION,
            ToolStep {
                name: "change_plan",
                arguments: r#"{"subscription_id":"{sub}","plan":"{plan}","prorate":true}"#,
                result: r#"{"subscription_id":"{sub}","plan":"{plan}","prorated_charge":{amount}}"#,
            },
        ],
        answers: &[
            "You're now on {plan}. A prorated charge of ${amount} was added for the rest of this period.",
            "Upgrade done: subscription {sub} is on {plan} effective now, prorated at ${amount}.",
        ],
        follow_ups: &[(
            "Can I go back to Basic later?",
            "Yes, you can downgrade any time; it takes effect at the next renewal.",
        )],
    },
    IntentSpec {
        intent: Intent::DeliveryDamage,
        openers: &[
            "My {product} arrived broken, the box was crushed. Order {order}.",
            "The package for order {order} came damaged and the {product} is scratched.",
            "Received a cracked {product} today (order {order}). What now?",
            "Half of order {order} was smashed in transit.",
        ],
        tools: &[
            GET_ORDER,
            ToolStep {
                name: "create_replacement_order",
                arguments: r#"{"order_id":"{order}","reason":"damaged_in_transit","items":["{product}"]}"#,
                result: r#"{"replacement_order_id":"{order}-R","ships":"{eta}","return_label":true}"#,
            },
        ],
        answers: &[
            "I'm sorry it arrived damaged. A replacement {product} (order {order}-R) ships {eta}, and a prepaid return label is in your email.",
            "I've sent a free replacement for the damaged {product}; it ships {eta}. No need to return the broken one.",
        ],
        follow_ups: &[(
            "Can I get a refund instead of a replacement?",
            "Of course, I can switch it to a refund of ${amount} instead.",
        )],
    },
    IntentSpec {
        intent: Intent::CouponNotWorking,
        openers: &[
            "The coupon {coupon} says it's invalid at checkout.",
            "Why doesn't my discount code {coupon} work? It expires next month.",
            "I tried promo code {coupon} for the {product} and got no discount.",
            "Your newsletter gave me {coupon} but the cart rejects it.",
        ],
        tools: &[
            ToolStep {
                name: "validate_coupon",
                arguments: r#"{"code":"{coupon}","cart_total":{amount}}"#,
                result: r#"{"code":"{coupon}","valid":false,"reason":"minimum_spend_not_met","minimum_spend":150}"#,
            },
            ToolStep {
                name: "apply_manual_discount",
                arguments: r#"{"email":"{email}","percent":15,"code":"{coupon}"}"#,
                result: r#"{"applied":true,"new_code":"{coupon}-X","percent":15}"#,
            },
        ],
        answers: &[
            "{coupon} needs a minimum spend of $150, which is why it was rejected. I've created {coupon}-X for you, which works on your current cart.",
            "The code had a minimum spend. As a courtesy I've applied a 15% discount with the new code {coupon}-X.",
        ],
        follow_ups: &[(
            "Does the new code work on sale items too?",
            "Yes, {coupon}-X works on everything, sale items included.",
        )],
    },
];

/// Requests a support agent should not be matched to any support topic.
pub const OFF_TOPIC: &[&str] = &[
    "Write me a short poem about autumn leaves.",
    "Who won the football World Cup in 1998?",
    "What's a good recipe for banana bread?",
    "Can you explain how black holes form?",
    "Translate 'good morning, how are you' into Japanese.",
    "Tell me a joke about cats.",
    "What is the capital of Australia?",
    "Help me plan a three-day trip to Lisbon.",
    "Write a haiku about the ocean at night.",
    "Which is bigger, a blue whale or a dinosaur?",
    "Give me three ideas for a birthday party for a 7-year-old.",
    "Summarize the plot of Hamlet in two sentences.",
];

pub const OFF_TOPIC_ANSWERS: &[&str] = &[
    "I'm the support assistant for your orders, billing and account, so I can't help with that, but feel free to ask about anything account-related.",
    "That's outside what I can help with here; I handle orders, subscriptions and billing questions.",
    "Sorry, I can only help with support questions about your orders and account.",
];

/// Failures a tool call may hit: (exception type, message).
pub const TOOL_FAILURES: &[(&str, &str)] = &[
    (
        "support_tools.errors.UpstreamTimeout",
        "{service} unavailable: upstream timeout after 30s",
    ),
    (
        "ConnectionResetError",
        "[Errno 104] Connection reset by peer ({service})",
    ),
    (
        "support_tools.errors.RateLimited",
        "429 Too Many Requests from {service}, retry later",
    ),
    (
        "support_tools.errors.ServiceError",
        "{service} returned 503 Service Unavailable",
    ),
];

pub const FAILURE_ANSWERS: &[&str] = &[
    "I'm sorry, our systems are having trouble right now and I couldn't complete this. I've escalated it to a human agent who will email you at {email} within 24 hours.",
    "Apologies, the request failed on our side. Please try again in a few minutes; if it keeps failing, a colleague will follow up.",
];
