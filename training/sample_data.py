"""A seeded generator of a realistic helpdesk export, with its config, for demos and tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml

FIRST_LINE = "service-desk"
MANAGER = "support-manager"
REFUND_LIMIT = 1000

# (subject templates, body templates, resolution templates) per resolver; {slots} are filled at random.
TOPICS: dict[str, list[tuple[list[str], list[str], list[str]]]] = {
    FIRST_LINE: [
        (
            ["Password reset", "Can't log in", "Locked out of my account", "Login not working"],
            [
                "I forgot my password and the reset email never arrived. My username is {user}.",
                "I am locked out after too many attempts, can you unlock my account?",
                "The login page says my password is wrong but I just changed it yesterday.",
            ],
            [
                "Sent a new password reset link and unlocked the account; customer logged in.",
                "Cleared the lockout and walked the customer through the reset page.",
            ],
        ),
        (
            ["How do I export my data?", "Question about reports", "Where is the CSV export"],
            [
                "How can I export last month's report to CSV? I can't find the button.",
                "Is there a way to download all my {item} as a spreadsheet?",
            ],
            ["Pointed the customer to Reports > Export and the help article on CSV exports."],
        ),
        (
            ["Invoice copy", "Need a copy of my invoice", "Where can I download invoices"],
            [
                "Could you send me a copy of invoice {invoice}? Our accountant needs it.",
                "Where do I find my invoices in the portal? I need the PDF for {month}.",
            ],
            ["Showed where invoices live under Billing > History and resent the PDF."],
        ),
        (
            ["Change email address", "Update my profile", "Add a user"],
            [
                "I want to change the email address on my account to my new work address.",
                "How do I add a colleague to our workspace? We have a free seat.",
                "Please update the company name on our profile to {company}.",
            ],
            ["Updated the profile details as requested.", "Explained how to invite a user from Settings > Team."],
        ),
        (
            ["Notifications too frequent", "Stop the emails", "Notification settings"],
            [
                "I get an email for every comment, how do I turn that off?",
                "Can I get a daily digest instead of instant notifications?",
            ],
            ["Showed the notification settings page; customer switched to a daily digest."],
        ),
        (
            ["Passwort zurücksetzen", "Anmeldung geht nicht"],
            [
                "Ich habe mein Passwort vergessen und die E-Mail zum Zurücksetzen kommt nicht an.",
                "Ich kann mich seit heute nicht mehr anmelden, bitte um Hilfe.",
            ],
            ["Link zum Zurücksetzen erneut gesendet; Kunde kann sich wieder anmelden."],
        ),
    ],
    "billing": [
        (
            ["Charged twice", "Double charge on my card", "Duplicate payment"],
            [
                "I was charged twice for the {plan} plan this month, {amount_small} each time. Please refund one.",
                "My credit card statement shows two payments of {amount_small} on {date}.",
            ],
            ["Refunded the duplicate charge of the {plan} plan; confirmed with payment provider."],
        ),
        (
            ["Refund request", "Please refund", "Cancel and refund"],
            [
                "I cancelled within the trial but was still billed {amount_small}. I want a refund.",
                "We downgraded last week but were charged the full price. Please refund the difference.",
            ],
            ["Issued a prorated refund and corrected the subscription."],
        ),
        (
            ["Wrong VAT on invoice", "Tax ID missing on invoice", "Incorrect billing address"],
            [
                "Our invoice {invoice} shows VAT although we entered our EU VAT ID {vat}.",
                "The billing address on invoice {invoice} is wrong and our finance team rejects it.",
            ],
            ["Added the VAT ID, reissued invoice {invoice} without VAT."],
        ),
        (
            ["Payment failed", "Card declined", "Subscription suspended for non-payment"],
            [
                "My card was declined when renewing and now the account is suspended.",
                "The payment keeps failing although the card works everywhere else.",
            ],
            ["Retried the payment after the card was updated; subscription reactivated."],
        ),
        (
            ["Zahlung doppelt abgebucht", "Rechnung falsch"],
            [
                "Mir wurde der Betrag von {amount_small} zweimal abgebucht, bitte erstatten.",
                "Auf der Rechnung {invoice} ist die Umsatzsteuer falsch ausgewiesen.",
            ],
            ["Doppelte Abbuchung erstattet und Rechnung korrigiert."],
        ),
    ],
    "engineering": [
        (
            ["Error 500 on dashboard", "App crashes", "Bug: page won't load", "Internal server error"],
            [
                "Since this morning the dashboard shows error 500 when I open project {project}.",
                "The mobile app crashes on start after the latest update (version {version}).",
                "Clicking Save on a form gives 'Something went wrong' and nothing is stored. Error code {code}.",
            ],
            [
                "Reproduced the bug, fix deployed in release {version}.",
                "Traced to a failing database migration; rolled back and patched.",
            ],
        ),
        (
            ["Data not syncing", "Records missing", "Sync stuck"],
            [
                "Records created yesterday are missing from the list view, the sync seems stuck.",
                "Our {item} stopped syncing between web and mobile since {date}.",
            ],
            ["Restarted the stuck sync worker and backfilled the missing records."],
        ),
        (
            ["Very slow performance", "Timeouts", "Outage?"],
            [
                "Everything is extremely slow today, pages take 30 seconds and then time out.",
                "Is there an outage? Nobody in our team can load the app since {time}.",
            ],
            ["Incident on the EU cluster resolved; performance back to normal."],
        ),
        (  # machine-generated alerts from the customer's monitoring
            ["Monitoring alert: {service} down", "[ALERT] {service} error rate", "Job {job} failed"],
            [
                "Event: critical: {service} error rate above threshold for 5 minutes on host {host}. "
                "This message was automatically generated, do not reply.",
                "Job {job} failed in scheduler at {time}. Exit code {code}. Automated notification, do not reply.",
            ],
            ["Restarted the failed service; monitoring back to green.", "Re-ran the job after fixing the scheduler."],
        ),
    ],
    "security": [
        (
            ["Suspicious login", "Someone logged into my account", "Unknown device"],
            [
                "I got an alert about a login from {country} that was not me. Please secure my account.",
                "There are sessions in my account from devices I don't recognise.",
            ],
            ["Revoked all sessions, forced a password change and enabled 2FA enforcement."],
        ),
        (
            ["Phishing email", "Is this email from you?", "Fake invoice email"],
            [
                "I received an email claiming to be from you asking for my password. Is this phishing?",
                "We got an invoice email with a strange link from a lookalike domain.",
            ],
            ["Confirmed phishing, blocked the domain and notified affected customers."],
        ),
        (
            ["API key leaked", "Data breach concern", "Exposed credentials"],
            [
                "One of our developers pushed our API key to a public repository. What should we do?",
                "We think customer data may have been exposed through a shared link. Need an audit log.",
            ],
            ["Rotated the key, reviewed audit logs, no unauthorised access found."],
        ),
    ],
    "integrations": [
        (
            ["Salesforce sync failing", "CRM integration broken", "HubSpot connection"],
            [
                "The Salesforce integration fails with 'INVALID_SESSION_ID' since {date}.",
                "Contacts are no longer pushed to HubSpot, the connector shows an auth error.",
            ],
            ["Re-authorised the connector and replayed the failed sync jobs."],
        ),
        (
            ["Webhook not firing", "Webhooks failing", "API rate limit"],
            [
                "Our webhook endpoint stopped receiving events, the delivery log shows 429 errors.",
                "We hit the API rate limit every night during our import job. Can it be raised?",
            ],
            ["Adjusted the rate limit for the account and explained retry headers."],
        ),
        (
            ["SSO setup", "SAML login error", "Okta integration"],
            [
                "We are configuring SAML SSO with Okta and get 'invalid audience' on login.",
                "Our Azure AD single sign-on stopped working after we rotated the certificate.",
            ],
            ["Fixed the audience URI in the SAML config; SSO works."],
        ),
    ],
    "account-management": [
        (
            ["Enterprise quote", "Upgrade to enterprise", "Pricing for 200 seats"],
            [
                "We want to move {seats} users to the enterprise plan. Can we get a quote?",
                "What discounts are available for an annual contract with {seats} seats?",
            ],
            ["Sent an enterprise quote and scheduled a call with the account manager."],
        ),
        (
            ["Contract renewal", "Renewal terms", "Cancel our contract"],
            [
                "Our contract renews on {date}; we want to discuss the terms before then.",
                "We are considering not renewing. What are our options for reducing seats?",
            ],
            ["Account manager agreed renewal terms with the customer."],
        ),
    ],
}

# Cues a lead recognises as reasons to go up the hierarchy.
LEGAL = [
    "If this is not fixed I will take legal action.",
    "My lawyer will be in touch about this.",
    "I am filing a complaint with the consumer protection agency and consider small claims court.",
    "Ich werde rechtliche Schritte einleiten, wenn das nicht gelöst wird.",
]
REPEATED = [
    "This is the third time I am contacting you about this.",
    "I have written four times already and nobody answered.",
    "Still no answer after two weeks, ticket {old} was closed without a fix.",
    "I keep being told someone will call me back and nobody ever does.",
]
VIP_ANGER = [
    "This is unacceptable for a customer of our size.",
    "I expect a call from someone senior today.",
    "We are seriously reconsidering the partnership.",
]
MANAGER_REQUEST = [
    "I want to speak to your manager.",
    "Please put me through to a supervisor.",
    "I demand to talk to someone in charge.",
    "Ich möchte mit Ihrem Vorgesetzten sprechen.",
]
MANAGER_RESOLUTIONS = [
    "Team lead called the customer, apologised and agreed a goodwill credit.",
    "Manager reviewed the case, approved the refund exception and followed up personally.",
    "Escalated to the support manager, who set up a call and a remediation plan.",
]

# Real queues hold vague tickets that say little about who will solve them.
VAGUE_SUBJECTS = ["Problem", "Urgent", "Help needed", "Question", "Issue with my account", "Not working"]
VAGUE_BODIES = [
    "It doesn't work since yesterday. Please help.",
    "Can someone call me back about my account?",
    "I have a problem with your product, please advise.",
    "Something is wrong, I need help as soon as possible.",
    "Please look into my account, there is an issue.",
    "Still broken.",
    "Please call me.",
]

NAMES = [
    "Anna Schmidt",
    "John Miller",
    "Priya Patel",
    "Luca Rossi",
    "Mei Chen",
    "Omar Haddad",
    "Sofia Garcia",
    "Tom Becker",
    "Aisha Bello",
    "Jan Novak",
    "Emma Dubois",
    "Kenji Sato",
]
COMPANIES = ["Acme GmbH", "Northwind Ltd", "Globex Inc", "Initech", "Umbrella Retail", "Hooli", "Vandelay Imports"]
GREETINGS = ["Hi,", "Hello team,", "Dear support,", "Hallo,", "Good morning,", ""]
SIGNOFFS = ["Best regards,", "Kind regards,", "Thanks,", "Cheers,", "Mit freundlichen Grüßen,"]
CHANNELS = ["email", "chat", "web", "phone"]
TIERS = ["free", "standard", "premium", "vip"]


def _fill(template: str, rng: random.Random) -> str:
    slots = {
        "user": f"user{rng.randint(100, 9999)}",
        "item": rng.choice(["contacts", "projects", "orders", "tasks"]),
        "invoice": f"INV-{rng.randint(10000, 99999)}",
        "month": rng.choice(["March", "April", "May", "June", "October"]),
        "company": rng.choice(COMPANIES),
        "plan": rng.choice(["Starter", "Team", "Business"]),
        "amount_small": f"${rng.randint(9, 480)}.00",
        "date": f"{rng.randint(1, 28)}.{rng.randint(1, 12)}.",
        "vat": f"DE{rng.randint(100000000, 999999999)}",
        "project": f"P-{rng.randint(100, 999)}",
        "version": f"{rng.randint(3, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        "code": f"E{rng.randint(1000, 9999)}",
        "time": f"{rng.randint(7, 18)}:{rng.choice(['00', '15', '30', '45'])}",
        "country": rng.choice(["Brazil", "Vietnam", "Russia", "Nigeria", "Romania"]),
        "seats": str(rng.choice([50, 120, 200, 500])),
        "old": f"T-{rng.randint(100000, 199999)}",
        "service": rng.choice(["api-gateway", "sync-worker", "billing-export", "webhook-relay"]),
        "job": f"nightly_export_{rng.randint(10, 99)}",
        "host": f"app-{rng.randint(1, 40):02d}.customer.example",
    }
    return template.format(**slots)


def _noise(body: str, rng: random.Random, channel: str, name: str) -> str:
    """Export artefacts real helpdesks produce: CR markers, quoted replies, signatures, mojibake."""
    email = name.lower().replace(" ", ".") + "@" + rng.choice(["example.com", "mail.test", "corp.example"])
    if channel == "email":
        body = f"{rng.choice(GREETINGS)}\n\n{body}\n\n{rng.choice(SIGNOFFS)}\n{name}\n{rng.choice(COMPANIES)}"
        if rng.random() < 0.3:
            body = f"received from: {email}\n\n" + body
        if rng.random() < 0.15:
            body += (
                "\n\nOn Mon, 3 Mar 2026 at 10:02, Support <support@example.com> wrote:\n"
                "> Thanks for reaching out.\n> We are looking into it."
            )
        if rng.random() < 0.25:
            body = body.replace("\n", "_x000D_\n")
    if rng.random() < 0.03:
        body = body.encode("utf-8").decode("latin-1")
    return body


def generate(rows: int = 3000, seed: int = 7) -> pd.DataFrame:
    """A helpdesk export of `rows` resolved tickets; the same seed gives the same file."""
    rng = random.Random(seed)
    weights = {
        FIRST_LINE: 0.46,
        "billing": 0.13,
        "engineering": 0.13,
        "security": 0.06,
        "integrations": 0.08,
        "account-management": 0.06,
    }
    teams, probs = zip(*weights.items(), strict=True)
    start = datetime(2025, 11, 1, tzinfo=UTC)
    records = []
    for i in range(rows):
        team = rng.choices(teams, probs)[0]
        subjects, bodies, resolutions = rng.choice(TOPICS[team])
        channel = rng.choices(CHANNELS, [0.5, 0.25, 0.15, 0.1])[0]
        tier = rng.choices(TIERS, [0.3, 0.4, 0.22, 0.08])[0]
        name = rng.choice(NAMES)
        subject = _fill(rng.choice(subjects), rng)
        body = _fill(rng.choice(bodies), rng)
        if rng.random() < 0.08:
            subject, body = rng.choice(VAGUE_SUBJECTS), rng.choice(VAGUE_BODIES)
        resolver, resolution = team, _fill(rng.choice(resolutions), rng)
        # Hierarchical escalations are rare (~5% of tickets), and each comes with a cue a real lead would
        # recognise: a ticket without one goes to the first line or a specialist team, never up the hierarchy.
        cue = rng.random()
        if cue < 0.012:
            body += " " + rng.choice(LEGAL)
            resolver = MANAGER
        elif cue < 0.024:
            body += " " + _fill(rng.choice(REPEATED), rng)
            resolver = MANAGER
        elif cue < 0.036:
            body += " " + rng.choice(MANAGER_REQUEST)
            resolver = MANAGER
        elif cue < 0.1 and team == "billing":
            amount = rng.randint(REFUND_LIMIT + 100, 9000)
            body += f" We dispute the charge of ${amount:,}.00 and demand a full refund."
            resolver = MANAGER
        elif tier == "vip" and cue < 0.2 and team != FIRST_LINE:
            body += " " + rng.choice(VIP_ANGER)
            resolver = MANAGER
        if resolver == MANAGER:
            resolution = rng.choice(MANAGER_RESOLUTIONS)
        elif rng.random() < 0.04:  # real exports are noisy: some tickets end with another team
            resolver = rng.choice(teams)
        created = start + timedelta(minutes=rng.randint(0, 365 * 24 * 60))
        records.append(
            {
                "ticket_id": f"T-{200000 + i}",
                "created_at": created.strftime("%Y-%m-%d %H:%M:%S"),
                "subject": subject,
                "body": _noise(body, rng, channel, name),
                "channel": channel,
                "customer_tier": tier,
                "resolved_by": resolver,
                "resolution": resolution,
            }
        )
    frame = pd.DataFrame.from_records(records)
    return frame.sort_values("created_at", kind="stable").reset_index(drop=True)


SAMPLE_CONFIG = {
    "columns": {
        "id": "ticket_id",
        "text": ["subject", "body"],
        "target": "resolved_by",
        "created_at": "created_at",
        "resolution": "resolution",
        "metadata": ["channel", "customer_tier"],
    },
    "teams": {"first_line": [FIRST_LINE], "hierarchical": [MANAGER]},
    "rules": [
        {
            "name": "legal-threat",
            "when": {"text": [r"\blawyers?\b", r"\blegal (action|steps)\b", r"\bsmall claims\b", r"rechtliche"]},
            "target": MANAGER,
        },
        {
            "name": "outage",
            "when": {"text": [r"\boutage\b", r"\bnobody .{0,20}can (load|log ?in)\b"]},
            "target": "engineering",
            "action": "add",
        },
    ],
}


def write_sample(output: str | Path, rows: int = 3000, seed: int = 7) -> tuple[Path, Path]:
    """Write `tickets.csv` and `config.yaml` into `output`; returns both paths."""
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    data, config = folder / "tickets.csv", folder / "config.yaml"
    generate(rows, seed).to_csv(data, index=False)
    config.write_text(
        "# Maps the sample export's columns to ticket fields; copy and edit it for your own export.\n"
        + yaml.safe_dump(SAMPLE_CONFIG, sort_keys=False),
        encoding="utf-8",
    )
    return data, config
