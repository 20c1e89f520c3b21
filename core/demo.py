"""The demo workspace: two flower shops, their users and weeks of realistic support traffic.

Everything comes from `random.Random` seeded with `seed`, and every timestamp is an offset from
`now`, so the same seed and `now` build the same workspace. The passwords below are public on
purpose: they exist only for the demo shops, which the login page names as such.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from types import MappingProxyType
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import Session, SQLModel, col, select

from core import audit, memory, memory_patterns, review_groups
from core.access import Actor, Role
from core.errors import InvalidInput
from core.profiles import seed_default_profiles
from core.tenants import create_tenant
from core.text import text_hash
from core.users import UserView, create_user, parse_user_create
from db.engine import session_scope, set_tenant
from db.models import (
    Conversation,
    Example,
    ExampleSource,
    ExampleStatus,
    Intent,
    Message,
    Tenant,
    utcnow,
)

# --------------------------------------------------------------------------------------------
# What the caller gets back
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoLogin:
    """One demo login, shown on the login page and in the terminal."""

    shop: str
    username: str
    role: Role
    password: str


@dataclass(frozen=True)
class ShopCounts:
    """What the demo wrote into one shop."""

    name: str
    slug: str
    users: int
    intents: int
    conversations: int
    messages: int
    examples: int
    labelled: int
    escalated: int

    def describe(self) -> str:
        share = self.escalated / self.conversations if self.conversations else 0.0
        return (
            f"{self.name} ({self.slug}): {self.users} users, {self.intents} intents, "
            f"{self.conversations:,} conversations ({share:.0%} escalated), "
            f"{self.messages:,} messages, {self.examples:,} examples "
            f"({self.labelled:,} labelled)"
        )


@dataclass(frozen=True)
class DemoSummary:
    """The shops the demo created and how long it took."""

    shops: tuple[ShopCounts, ...]
    seconds: float
    models: tuple[str, ...] = ()

    def describe(self) -> str:
        lines = [f"Demo workspace created in {self.seconds:.1f} s:"]
        lines += [f"  {shop.describe()}" for shop in self.shops]
        return "\n".join(lines + [f"  {model}" for model in self.models])


# --------------------------------------------------------------------------------------------
# The shops and their people
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DemoUser:
    username: str
    role: Role
    display_name: str
    password: str


@dataclass(frozen=True)
class _ShopSpec:
    name: str
    prefix: str
    conversations_per_day: float
    customers: int
    intents: tuple[str, ...] | None  # None: every intent in INTENTS
    boosts: tuple[tuple[str, float], ...]  # intents this shop hears about more often
    areas: tuple[str, ...]
    staff: tuple[str, ...]
    users: tuple[_DemoUser, ...]


SHOPS: tuple[_ShopSpec, ...] = (
    _ShopSpec(
        name="Bloom & Co.",
        prefix="bloom",
        conversations_per_day=23.5,
        customers=460,
        intents=None,
        boosts=(("wedding_consultation", 1.5), ("same_day_delivery", 1.2)),
        areas=(
            "Riverside",
            "Old Town",
            "Northgate",
            "Hillcrest",
            "Maple Park",
            "Westfield",
            "St Anne's",
            "Brookside",
            "the university district",
            "the harbour",
        ),
        staff=("Maya", "Theo", "Ines"),
        users=(
            _DemoUser("bloom.admin", Role.ADMIN, "Ada Whitfield", "bloom-admin-demo"),
            _DemoUser("bloom.florist", Role.FLORIST, "Rosa Delgado", "bloom-florist-demo"),
            _DemoUser("bloom.manager", Role.MANAGER, "Marcus Bell", "bloom-manager-demo"),
        ),
    ),
    _ShopSpec(
        name="Fern & Thistle",
        prefix="fern",
        conversations_per_day=6.5,
        customers=140,
        intents=(
            "order_status",
            "delivery_time",
            "same_day_delivery",
            "delivery_area",
            "cancel_order",
            "refund_request",
            "damaged_flowers",
            "sympathy_flowers",
            "funeral_arrangement",
            "wedding_consultation",
            "flower_care",
            "plant_care",
            "allergies",
            "pricing",
            "custom_arrangement",
            "subscription",
            "opening_hours",
            "seasonal_availability",
        ),
        boosts=(("plant_care", 3.0), ("seasonal_availability", 1.5), ("subscription", 1.5)),
        areas=(
            "Thistle Cross",
            "Ashby",
            "Kelso Road",
            "Greenbank",
            "Millbrae",
            "Elmwood",
            "the old town",
            "Harbour View",
        ),
        staff=("Callum", "Niamh"),
        users=(
            _DemoUser("fern.admin", Role.ADMIN, "Isla Fraser", "fern-admin-demo"),
            _DemoUser("fern.florist", Role.FLORIST, "Hamish Reid", "fern-florist-demo"),
            _DemoUser("fern.manager", Role.MANAGER, "Priya Nair", "fern-manager-demo"),
        ),
    ),
)

# --------------------------------------------------------------------------------------------
# What customers ask about: intents, their phrasings and the assistant's replies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _IntentSpec:
    name: str
    description: str
    weight: float  # how often customers ask about it, relative to the others
    escalation: float  # chance a conversation about it goes to a person
    phrases: tuple[str, ...]
    replies: tuple[str, ...]


INTENTS: tuple[_IntentSpec, ...] = (
    _IntentSpec(
        "order_status",
        "Where an order is and whether it has left the shop.",
        14,
        0.05,
        (
            "Where is my order {order}?",
            "where's my order??",
            "I placed an order ({order}) {past_day} and haven't had a delivery confirmation "
            "yet. Can you check on it?",
            "Can you tell me the status of order {order}",
            "has my order shipped yet",
            "Any update on {order}? It was meant to arrive {past_day}.",
            "I ordered {flower} for {relation}'s {occasion} and the tracking hasn't changed "
            "since this morning. Is it on its way?",
            "order {order_bare} status please",
            "Just checking my bouquet is still going out today, order number {order_bare}.",
            "Has the driver left with my flowers yet?",
            "I got an email saying my order was being prepared, but nothing since. What's "
            "happening with {order}?",
            "is {order} out for delivery",
            "The {flower} I sent {relation} haven't turned up. Can you check where they are? "
            "Order {order}.",
            "tracking link doesnt work, where are my flowers",
            "Could you confirm you received my order? I never got a confirmation email.",
        ),
        (
            "Order {order} left our studio this morning and is with the driver now; you'll "
            "get a text as soon as it's delivered.",
            "Thanks for checking! Your order {order} is being arranged right now and will go "
            "out on the next delivery run.",
        ),
    ),
    _IntentSpec(
        "delivery_time",
        "When a delivery will arrive and which time slots exist.",
        9,
        0.04,
        (
            "What time will my delivery arrive {day}?",
            "what time do you deliver",
            "Can you deliver {time}? It's a surprise for {relation}.",
            "Is there a delivery window I can choose?",
            "How long does delivery take to {area}?",
            "will my flowers arrive before {name} leaves for work? she leaves around 8",
            "Roughly what time will the driver come {day}? I need to be home to sign for it.",
            "Can I pick a time slot for delivery?",
            "Do you deliver in the evenings?",
            "if I order now when would it get to {area}",
            "I'm ordering for {day} - could it be delivered {time}?",
            "Do you deliver on Sundays?",
            "what's the earliest delivery slot {day}",
        ),
        (
            "We deliver between 9am and 6pm. You can choose a morning (9-12) or afternoon "
            "(12-6) slot at checkout, and the driver texts 30 minutes before arriving.",
            "Deliveries to {area} usually arrive within the slot you pick; a morning slot "
            "means before noon.",
        ),
    ),
    _IntentSpec(
        "same_day_delivery",
        "Whether an order placed today can still be delivered today.",
        7,
        0.04,
        (
            "Can I get flowers delivered today?",
            "same day delivery to {area}??",
            "What's the cut-off for same-day delivery?",
            "If I order in the next hour can it arrive today?",
            "I completely forgot it's {relation}'s {occasion} today. Can you still deliver "
            "something this afternoon?",
            "do u do same day",
            "Is it too late to order for today?",
            "Need {flower} delivered to {area} today, is that possible?",
            "How much extra is same day delivery?",
            "Is same-day delivery available on Saturdays?",
            "Order before what time for delivery today?",
            "Can you get a bouquet to {area} hospital by 5pm today? A friend has just had "
            "an operation.",
        ),
        (
            "Yes! Order before 2pm (noon on Saturdays) and we deliver the same day, "
            "including to {area}.",
            "Same-day delivery costs £6.95 and is available for orders placed before 2pm. "
            "After that, the earliest slot is tomorrow morning.",
        ),
    ),
    _IntentSpec(
        "delivery_area",
        "Which neighbourhoods and towns the shop delivers to.",
        5,
        0.03,
        (
            "Do you deliver to {area}?",
            "do you cover {area}",
            "What areas do you deliver to?",
            "Is {area} within your delivery zone?",
            "How far do you deliver? My mum lives about 20 miles out.",
            "Can you send flowers to another city?",
            "Do you deliver to {area} or is that too far?",
            "Is delivery to {area} more expensive?",
            "Do you deliver to offices in {area}?",
            "Can you deliver internationally? I want to send flowers to my sister in Dublin.",
            "what's the delivery charge for {area}",
            "Do you deliver to hospitals and care homes?",
        ),
        (
            "We deliver to {area} and everywhere within about 10 miles of the shop; you can "
            "check any postcode at checkout.",
            "Our own drivers cover the city and nearby towns. Further afield we use a "
            "partner florist, so the bouquet is made fresh near the recipient.",
        ),
    ),
    _IntentSpec(
        "change_delivery_address",
        "Changing where an existing order goes.",
        4,
        0.12,
        (
            "I need to change the delivery address on order {order}.",
            "wrong address on my order!! can you change it",
            "Can you deliver to {relation}'s work instead of home? Order {order}.",
            "I put the wrong postcode in, can it be fixed before it goes out?",
            "Could you send order {order} to {area} instead, she's staying with her parents "
            "this week.",
            "Is it too late to change where my flowers are going?",
            "Can I update the recipient's address?",
            "my sister moved last month and I used her old address. please update {order}",
            "Please leave it with the neighbour at number 12 if no one's in.",
            "Can the address be changed to the reception desk at her office in {area}?",
            "Typo in the address - it's Flat 3, not Flat 8.",
        ),
        (
            "No problem. I've updated the delivery address on {order}; the driver's route "
            "will pick up the change.",
            "As long as the order hasn't left the shop we can change it. Please send the new "
            "address and I'll update {order}.",
        ),
    ),
    _IntentSpec(
        "cancel_order",
        "Cancelling an order before it is made or delivered.",
        3,
        0.15,
        (
            "I'd like to cancel order {order}.",
            "cancel my order please",
            "How do I cancel an order?",
            "Can I still cancel if it's already being made?",
            "Please cancel {order}, the event has been called off.",
            "I ordered twice by mistake, can you cancel one of them?",
            "Is there a fee to cancel?",
            "Need to cancel the {flower} I ordered for {day}, plans have changed.",
            "Can I cancel my order for {day} and re-order for next week instead?",
            "Cancel order {order_bare} please, thanks",
        ),
        (
            "I've cancelled order {order}. The refund goes back to your card within "
            "3-5 working days.",
            "Orders can be cancelled free of charge until we start arranging them, usually "
            "the morning of delivery. Shall I cancel {order} for you?",
        ),
    ),
    _IntentSpec(
        "refund_request",
        "Asking for money back, in full or in part.",
        3,
        0.45,
        (
            "I want a refund for order {order}.",
            "Can I get my money back? The flowers never arrived.",
            "How long do refunds take?",
            "I was charged but the order was cancelled, when will I be refunded?",
            "refund please. not happy at all",
            "The bouquet looked nothing like the picture. I'd like a refund.",
            "I'd like a partial refund - half the {flower} were missing.",
            "Still waiting on my refund for {order}, it's been a week.",
            "Can the refund go to a different card?",
            "The delivery was a day late and missed {relation}'s {occasion}. I expect a refund.",
            "Do you give refunds or only store credit?",
            "How do I request a refund?",
        ),
        (
            "I'm sorry to hear that. Refunds go back to the original card and take 3-5 "
            "working days to appear.",
            "I can see order {order}. A colleague will review the refund today and email "
            "you the outcome.",
        ),
    ),
    _IntentSpec(
        "damaged_flowers",
        "Flowers or vases that arrived broken, wilted or crushed.",
        3,
        0.5,
        (
            "My flowers arrived damaged.",
            "The {flower} were wilted when they arrived {past_day}.",
            "half the stems are snapped",
            "The vase was broken on arrival. Order {order}.",
            "{name} just sent me a photo of the bouquet and it looks dead. This was meant "
            "to be for her {occasion}!",
            "The {flower} are drooping after one day, is that normal?",
            "Box was crushed and the flowers are bent",
            "water had leaked everywhere and the card was soaked",
            "Petals falling off already, only delivered {past_day}",
            "Several of the {flower} were brown at the edges. Not what I paid for.",
            "the plant arrived with the pot cracked",
            "Flowers came completely squashed. Very disappointed.",
        ),
        (
            "I'm so sorry they arrived like that. Could you send a photo? We replace "
            "damaged flowers free of charge.",
            "That's not the standard we aim for. Please reply with a photo of the "
            "{flower} and we'll arrange a replacement.",
        ),
    ),
    _IntentSpec(
        "wrong_item",
        "The delivery was not what was ordered.",
        2,
        0.45,
        (
            "I received the wrong bouquet.",
            "I ordered {flower} but got {flower2}.",
            "This isn't what I ordered",
            "The arrangement that came is much smaller than the one on the website.",
            "You sent the wrong colour - I asked for {colour} and these are not.",
            "My order {order} came without the chocolates I paid for.",
            "there was no vase with my order even though I paid for one",
            "wrong card message!! it says happy birthday, it's a sympathy arrangement",
            "We got someone else's order, it has a different name on the card.",
            "I ordered the large size and got the standard one.",
            "The balloon was missing from my order.",
        ),
        (
            "I'm sorry we got that wrong. Could you tell me what arrived? We'll put it right "
            "as quickly as we can.",
            "Thanks for letting us know about {order}. We'll send what you ordered and you "
            "can keep the other arrangement.",
        ),
    ),
    _IntentSpec(
        "sympathy_flowers",
        "Choosing and sending flowers of condolence.",
        4,
        0.04,
        (
            "I'd like to send sympathy flowers to a friend who lost her father.",
            "What do you recommend for a condolence bouquet?",
            "sympathy flowers for a colleague, something understated",
            "Can you deliver sympathy flowers to a home in {area} {day}?",
            "My neighbour's husband passed away. What would be appropriate to send?",
            "Do you have white sympathy arrangements?",
            "Are lilies OK for sympathy flowers or are they too much?",
            "What should I write on a sympathy card?",
            "I want to send something to {name}'s family, they lost their dog last week",
            "Do you do sympathy plants instead of cut flowers? Something that lasts.",
            "Our team wants to send flowers to a colleague whose mother died. Budget around "
            "{amount}.",
            "condolence flowers delivered today possible?",
        ),
        (
            "I'm sorry for their loss. Our sympathy collection has soft white and green "
            "arrangements from £35, and we can deliver to {area} {day}.",
            "A simple white bouquet or a peace lily plant are both thoughtful choices. "
            "A short card such as 'Thinking of you all' is always appropriate.",
        ),
    ),
    _IntentSpec(
        "funeral_arrangement",
        "Wreaths, sprays and tributes for a funeral service.",
        3,
        0.15,
        (
            "I need a funeral wreath for {day}.",
            "Can you make a casket spray? The funeral is on {weekday}.",
            "Do you deliver to the funeral home in {area}?",
            "We'd like the letters MUM in white {flower} for the service.",
            "What funeral tributes do you offer?",
            "how much is a standing spray for a funeral",
            "Can you deliver directly to the church before the service at 11?",
            "My grandad's funeral is next week and he loved {flower}. Can you do an "
            "arrangement with those?",
            "Funeral flowers for a child, something gentle and not too formal.",
            "Can the family collect the funeral flowers from the shop instead?",
            "Need a heart-shaped tribute, red and white, for {day}",
            "Who do I talk to about flowers for a funeral? It's all a bit overwhelming.",
        ),
        (
            "I'm very sorry for your loss. We make wreaths, sprays, hearts and letter "
            "tributes and deliver directly to the funeral home or church.",
            "We can include {flower} in the tribute. Please let us know the date, time and "
            "address of the service and we'll take care of the rest.",
        ),
    ),
    _IntentSpec(
        "wedding_consultation",
        "Booking a consultation and quotes for wedding flowers.",
        3,
        0.25,
        (
            "We're getting married in {month} and would love to book a consultation.",
            "Do you do wedding flowers?",
            "How much does a bridal bouquet cost?",
            "Hi! Our wedding is in {month} next year at {venue}, around {guests} guests. "
            "Can we meet to talk about flowers?",
            "Can I book a wedding flower consultation?",
            "are you free on the {date} for a wedding",
            "We want {flower} and eucalyptus for our wedding, is that in season in {month}?",
            "What's your minimum spend for weddings?",
            "Do you do buttonholes and corsages?",
            "Can you decorate the arch and the tables at our venue?",
            "Could we see a portfolio of weddings you've done?",
            "My daughter is getting married and we'd like a quote for bouquets, buttonholes "
            "and table flowers.",
        ),
        (
            "Congratulations! Our wedding consultations are free and take about an hour. "
            "Which dates suit you?",
            "We'd love to help with your wedding. Bridal bouquets start at £120; after a "
            "consultation we send a detailed quote.",
        ),
    ),
    _IntentSpec(
        "event_flowers",
        "Flowers for parties, galas and other events.",
        2,
        0.15,
        (
            "We need table centrepieces for a {event} on {weekday}.",
            "Can you do flowers for a baby shower?",
            "Looking for flowers for a {event} with about {guests} guests.",
            "Do you hire out vases and stands for events?",
            "Can you decorate a restaurant for a private party?",
            "Need flowers for a christening next month",
            "How far in advance do I need to book event flowers?",
            "Do you set up and take down at the venue?",
            "What would 15 centrepieces cost roughly?",
            "flowers for a {event}, budget {amount}",
            "Can you do a flower wall for a birthday party?",
        ),
        (
            "We'd be happy to do the flowers for your {event}. Centrepieces start at £45 "
            "each, and we set up and collect at the venue.",
            "For events we recommend booking 3-4 weeks ahead. Send us the date, venue and "
            "number of tables and we'll put together a quote.",
        ),
    ),
    _IntentSpec(
        "flower_care",
        "Keeping cut flowers fresh for longer.",
        5,
        0.02,
        (
            "How do I keep my {flower} fresh?",
            "how often should i change the water",
            "Should I cut the stems of the {flower}?",
            "What do I do with the little packet of flower food?",
            "My {flower} are drooping already - any tips to revive them?",
            "How long should a bouquet of {flower} last?",
            "Can I put the flowers near a window?",
            "Do I remove the leaves below the water line?",
            "the water in the vase went cloudy, is that bad",
            "Best way to keep {flower} alive longer?",
            "Should I take the bouquet out of the wrapping straight away?",
            "Is it OK to keep the flowers in the fridge overnight?",
            "my tulips keep bending towards the window lol how do I stop that",
        ),
        (
            "Trim the stems at an angle, use the flower food, change the water every two "
            "days and keep them away from fruit and radiators.",
            "{flower} last longest in cool, fresh water. Recut the stems by 2cm every few "
            "days and remove any leaves below the water line.",
        ),
    ),
    _IntentSpec(
        "plant_care",
        "Looking after house plants bought from the shop.",
        3,
        0.02,
        (
            "How often should I water my {plant}?",
            "The leaves on my {plant} are turning yellow, what am I doing wrong?",
            "Does a {plant} need direct sunlight?",
            "brown tips on my {plant}, help",
            "When should I repot the {plant} I bought from you?",
            "Is the {plant} safe for cats?",
            "My orchid dropped all its flowers. Will it bloom again?",
            "What kind of soil should I use for a {plant}?",
            "I'm going away for two weeks, how do I keep my plants alive?",
            "Can the {plant} live in a bathroom with no window?",
            "There are little flies in the soil of my {plant}",
            "Should I mist my {plant}?",
        ),
        (
            "Most house plants, including a {plant}, like bright indirect light and water "
            "once the top few centimetres of soil are dry.",
            "Most plant troubles come down to watering: let the {plant} dry out a little "
            "between waterings and make sure the pot drains freely.",
        ),
    ),
    _IntentSpec(
        "allergies",
        "Pollen, scent and pet-safety questions.",
        2,
        0.03,
        (
            "Are there any flowers that are safe for someone with hay fever?",
            "The flowers are for {relation}, who is allergic to pollen. What can I send?",
            "Do you have hypoallergenic bouquets?",
            "Are lilies poisonous to cats?",
            "can you remove the lilies? allergic",
            "Which flowers are pet safe? We have a dog who eats everything.",
            "I'm sending flowers to a hospital ward - are there rules about allergies?",
            "Do {flower} have a strong scent? The recipient gets migraines.",
            "Is eucalyptus OK for someone with asthma?",
            "Can I order a low-pollen version of the {occasion} bouquet?",
            "Are sunflowers bad for allergies?",
        ),
        (
            "For hay fever we suggest roses, orchids, hydrangeas or tulips, which carry "
            "very little pollen. We can leave lilies out of any bouquet.",
            "We can make any bouquet low-pollen and leave out lilies, which are also "
            "dangerous to cats. Just add a note at checkout.",
        ),
    ),
    _IntentSpec(
        "pricing",
        "What bouquets, stems and delivery cost.",
        5,
        0.02,
        (
            "How much is a dozen roses?",
            "what's the price of the {flower} bouquet",
            "Do you have anything under {amount}?",
            "Why is the price higher this week?",
            "How much is delivery?",
            "How much would a large arrangement of {flower} be?",
            "Is VAT included in the prices on the website?",
            "What's your cheapest bouquet?",
            "price list?",
            "How much for {count} stems of {flower}?",
            "Is there a price difference between the regular and deluxe sizes?",
            "What can I get for around {amount} for {relation}'s {occasion}?",
        ),
        (
            "Our bouquets start at £30 and every price on the website includes VAT. "
            "Local delivery is £4.95.",
            "For around {amount} we'd suggest our seasonal hand-tied bouquet; you can also "
            "choose the deluxe size, which has about a third more stems.",
        ),
    ),
    _IntentSpec(
        "custom_arrangement",
        "Bespoke bouquets: chosen flowers, colours, containers.",
        4,
        0.1,
        (
            "Can you make a custom bouquet with {flower} and {flower2}?",
            "I'd like something bespoke in {colour} and white.",
            "Can I choose the flowers myself?",
            "Do you do arrangements in a hat box?",
            "Could you make a bouquet to match a dress? I'll send a photo.",
            "I want something wild and garden-style, not too neat.",
            "Can you do a bouquet with only {colour} flowers?",
            "custom order for {relation}'s {occasion}, she loves {flower}",
            "Can you add a teddy and a balloon to a bouquet?",
            "Is it possible to include dried flowers in the arrangement?",
            "Can I bring my own vase for you to fill?",
            "I'd like to recreate my wedding bouquet for our anniversary. Can you do that "
            "from a photo?",
        ),
        (
            "Of course! Tell us the flowers, colours and budget, and one of our florists "
            "will design it for you. Bespoke bouquets start at £45.",
            "We love a custom order. {flower} are available this week, so we can build the "
            "arrangement around them.",
        ),
    ),
    _IntentSpec(
        "subscription",
        "Managing a recurring flower subscription.",
        2,
        0.05,
        (
            "How does the flower subscription work?",
            "Can I pause my subscription while I'm away?",
            "cancel subscription",
            "Can I change my subscription from weekly to fortnightly?",
            "I'd like to gift a 3-month subscription to {relation}.",
            "When is my next subscription delivery?",
            "Can I change the delivery day of my subscription to {weekday}?",
            "how much is the monthly plan",
            "Do subscribers get a discount?",
            "My subscription delivery didn't come this week.",
            "Can I skip next week's delivery?",
            "Can I update the card on my subscription?",
        ),
        (
            "You can pause, skip or change your subscription any time from your account "
            "page, up to two days before the next delivery.",
            "Subscriptions are weekly, fortnightly or monthly, from £28 a delivery, and "
            "subscribers get 10% off everything else.",
        ),
    ),
    _IntentSpec(
        "gift_message",
        "The card message sent with an order.",
        3,
        0.03,
        (
            "Can I add a card message to my order?",
            "I forgot to add a message - can you add one to {order}?",
            "How long can the gift message be?",
            "Can you write 'Congratulations, love {sender}' on the card?",
            "Can I send it anonymously?",
            "please change the card message on {order} to: Thinking of you x",
            "Is the card handwritten?",
            "Can I include a longer letter with the flowers?",
            "I don't want the price to show on the card or the receipt",
            "Can I add a photo to the card?",
            "will the recipient know who sent them?",
        ),
        (
            "Every order comes with a free handwritten card of up to 200 characters. "
            "I've added your message to {order}.",
            "Yes, you can leave the card unsigned and we never include prices or receipts "
            "with a gift.",
        ),
    ),
    _IntentSpec(
        "opening_hours",
        "When the shop is open and orders can be collected.",
        4,
        0.01,
        (
            "What time do you open?",
            "Are you open on Sundays?",
            "opening hours?",
            "Are you open on the bank holiday?",
            "What time do you close today?",
            "Can I collect an order after 6pm?",
            "are you open now",
            "Is the shop open on {weekday}?",
            "When are you open over Christmas?",
            "Do you have late opening any day?",
            "Can I pop in {day} to pick up some {flower}?",
        ),
        (
            "We're open Monday to Saturday 8:30am-6pm and Sunday 10am-2pm.",
            "The shop is open until 6pm today; collections are ready from 10am.",
        ),
    ),
    _IntentSpec(
        "payment_issue",
        "Failed, declined or duplicated payments and payment methods.",
        2,
        0.35,
        (
            "My payment keeps failing.",
            "I was charged twice for order {order}!",
            "card declined but I have money in my account",
            "Can I pay with PayPal?",
            "The checkout page freezes when I press pay.",
            "I've been charged {amount} but my order total was less.",
            "Do you accept Apple Pay?",
            "Payment went through but I didn't get a confirmation and there's no order in "
            "my account.",
            "Can I pay by bank transfer for a large order?",
            "Why was there a pending charge on my card after I cancelled?",
            "3D secure code never arrives so I cant pay",
            "Can I split the payment between two cards?",
        ),
        (
            "We accept all major cards, PayPal and Apple Pay. A pending charge from a "
            "failed attempt disappears within a few days.",
            "Sorry about the trouble at checkout. I've asked our team to check the payment "
            "on {order}.",
        ),
    ),
    _IntentSpec(
        "discount_code",
        "Promo codes, vouchers and discounts.",
        3,
        0.03,
        (
            "My discount code {code} isn't working.",
            "do you have any discount codes",
            "Is there a student discount?",
            "I forgot to apply my code {code}, can you still take it off?",
            "The code says expired but the email said valid until Sunday.",
            "Can I use two discount codes on one order?",
            "Do you do a first order discount?",
            "{code} not working???",
            "Do you offer a discount for NHS workers?",
            "Can I use my voucher for delivery charges?",
            "Where do I enter a promo code?",
            "Is there a discount for ordering every month?",
        ),
        (
            "Codes go in the box under the basket total; only one code per order. "
            "{code} is valid on full-price bouquets.",
            "New customers get 10% off with WELCOME10, and subscribers save 10% on every order.",
        ),
    ),
    _IntentSpec(
        "corporate_orders",
        "Regular office flowers, business accounts and bulk gifts.",
        1,
        0.25,
        (
            "We'd like weekly flowers for our office reception.",
            "Do you do corporate accounts with monthly invoicing?",
            "Can you send flowers to {count} clients for the holidays?",
            "I'm an office manager looking for a regular supplier for our {area} office.",
            "Do you offer a discount for business orders?",
            "Can we set up a corporate account?",
            "We want to send thank-you bouquets to 20 customers, all different addresses. "
            "Can you handle that?",
            "Do you supply hotels and restaurants?",
            "Can you invoice our company rather than taking card payment?",
            "Need a quote for lobby arrangements, replaced every Monday.",
            "Can you add our logo to the card?",
        ),
        (
            "We look after many local businesses, with weekly arrangements and monthly "
            "invoicing. I'll ask our corporate team to contact you.",
            "Yes, we can deliver bulk gifts to many addresses in one order; send us the "
            "list and we'll send a quote.",
        ),
    ),
    _IntentSpec(
        "seasonal_availability",
        "Which flowers are in season or in stock.",
        3,
        0.02,
        (
            "Do you have {flower} at the moment?",
            "are peonies in season",
            "When will you have {flower} again?",
            "What flowers are in season right now?",
            "Can I get sunflowers in winter?",
            "Do you have tulips in {month}?",
            "Will you have {flower} for a wedding in {month}?",
            "Are your flowers locally grown?",
            "What seasonal bouquets do you have this week?",
            "Any dahlias left this season?",
            "Are hydrangeas available year round?",
            "Do you stock Christmas wreaths yet?",
        ),
        (
            "This week we have {flower}, ranunculus and the first garden roses. The "
            "seasonal bouquet changes every Friday.",
            "{flower} depend on the season, but we can usually source them with a week's notice.",
        ),
    ),
)

# Follow-up questions in a conversation drift to a neighbouring topic this often.
RELATED: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "order_status": (
            "delivery_time",
            "change_delivery_address",
            "cancel_order",
            "gift_message",
        ),
        "delivery_time": ("order_status", "same_day_delivery", "delivery_area"),
        "same_day_delivery": ("delivery_area", "pricing", "gift_message"),
        "delivery_area": ("same_day_delivery", "pricing", "delivery_time"),
        "cancel_order": ("refund_request",),
        "refund_request": ("cancel_order", "payment_issue"),
        "damaged_flowers": ("refund_request", "flower_care"),
        "wrong_item": ("refund_request", "order_status"),
        "sympathy_flowers": ("funeral_arrangement", "gift_message", "delivery_time"),
        "funeral_arrangement": ("sympathy_flowers", "pricing"),
        "wedding_consultation": ("pricing", "seasonal_availability", "custom_arrangement"),
        "event_flowers": ("pricing", "custom_arrangement"),
        "flower_care": ("allergies", "plant_care"),
        "plant_care": ("allergies",),
        "allergies": ("custom_arrangement", "flower_care"),
        "pricing": ("discount_code", "delivery_area"),
        "custom_arrangement": ("pricing", "seasonal_availability"),
        "subscription": ("pricing", "payment_issue"),
        "payment_issue": ("discount_code", "order_status"),
        "discount_code": ("pricing", "payment_issue"),
        "corporate_orders": ("pricing",),
    }
)

SLOT_VALUES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "flower": (
            "roses",
            "tulips",
            "peonies",
            "lilies",
            "sunflowers",
            "hydrangeas",
            "orchids",
            "carnations",
            "ranunculus",
            "freesias",
            "gerberas",
            "chrysanthemums",
            "alstroemeria",
            "anemones",
            "dahlias",
            "sweet peas",
            "lisianthus",
            "gypsophila",
        ),
        "plant": (
            "monstera",
            "fiddle leaf fig",
            "peace lily",
            "snake plant",
            "pothos",
            "calathea",
            "orchid",
            "olive tree",
            "bonsai",
            "rubber plant",
            "aloe vera",
            "string of pearls",
        ),
        "relation": (
            "my mum",
            "my wife",
            "my husband",
            "my girlfriend",
            "my boyfriend",
            "my grandma",
            "my sister",
            "a colleague",
            "my best friend",
            "my partner",
            "my aunt",
            "my neighbour",
            "my daughter",
        ),
        "name": (
            "Sarah",
            "James",
            "Priya",
            "Tom",
            "Grace",
            "Mohammed",
            "Lucy",
            "Daniel",
            "Chloe",
            "Olivia",
            "Ben",
            "Aisha",
            "Mei",
            "Hannah",
            "Jack",
            "Sofia",
            "Liam",
            "Emma",
            "Noah",
            "Zara",
            "Fiona",
            "Kwame",
            "Elena",
            "Oscar",
        ),
        "occasion": (
            "birthday",
            "anniversary",
            "graduation",
            "retirement",
            "new job",
            "engagement",
            "birthday",
            "anniversary",
        ),
        "day": ("today", "tomorrow", "Friday", "Saturday", "Monday", "next Tuesday", "Thursday"),
        "past_day": (
            "yesterday",
            "on Monday",
            "last Friday",
            "this morning",
            "two days ago",
            "on Saturday",
        ),
        "weekday": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"),
        "time": (
            "before noon",
            "by 3pm",
            "in the morning",
            "after 5pm",
            "by lunchtime",
            "before 10am",
            "in the afternoon",
        ),
        "event": (
            "charity gala",
            "corporate dinner",
            "christening",
            "baby shower",
            "product launch",
            "restaurant opening",
            "60th birthday party",
            "summer party",
        ),
        "venue": (
            "the Old Mill",
            "St Mary's Church",
            "Hillcrest Manor",
            "the botanical gardens",
            "a barn just outside town",
            "the Grand Hotel",
        ),
        "month": ("April", "May", "June", "July", "August", "September", "October", "December"),
        "date": (
            "14th of June",
            "3rd of August",
            "21st of September",
            "28th of May",
            "2nd of July",
        ),
        "guests": ("60", "80", "100", "120", "150", "200"),
        "count": ("10", "12", "20", "24", "30", "50"),
        "colour": (
            "pink",
            "yellow",
            "blue",
            "purple",
            "peach",
            "red",
            "white and green",
            "pastel",
            "orange",
        ),
        "code": ("SPRING15", "WELCOME10", "BLOOM20", "THANKYOU5", "FREESHIP", "LOVE10", "VIP25"),
        "amount": ("£30", "£40", "£45", "£50", "£60", "£75", "£100", "£150"),
    }
)

GREETINGS: tuple[str, ...] = (
    "Hi!",
    "Hello!",
    "Hi there.",
    "Hey!",
    "Good morning.",
    "Hiya,",
    "Hi,",
    "hello,",
)
THANKS: tuple[str, ...] = ("Thanks", "thanks!", "thx", "Thank you.", "Cheers", "ty", "Many thanks")
SIGN_OFFS: tuple[str, ...] = ("Kind regards,", "Thanks,", "Best wishes,", "Many thanks,")

HANDOFFS: tuple[str, ...] = (
    "I'm sorry about this. I've passed your message to one of our florists at {shop}, who "
    "will reply here shortly.",
    "Thanks for explaining. This needs a person to sort out properly, so I've handed it to "
    "our team; someone will be with you in a few minutes.",
    "I understand, and I'm sorry. I'm connecting you with a member of the {shop} team now.",
    "Let me get a colleague to help with this one. They'll pick up this conversation shortly.",
)

AGENT_REPLIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "refund_request": (
            "Hi, it's {agent} from {shop}. I've issued a full refund for order {order}; it should "
            "reach your card within 3-5 working days.",
        ),
        "damaged_flowers": (
            "Hi, {agent} here from {shop}. I'm so sorry. We'll deliver a fresh replacement "
            "tomorrow morning at no cost, and there's no need to return the original.",
        ),
        "wrong_item": (
            "Hello, it's {agent} at {shop}. Our driver will swap it for the right arrangement "
            "today. Apologies for the mix-up.",
        ),
        "payment_issue": (
            "Hi, it's {agent} from {shop}. I can see the duplicate charge; I've reversed it and "
            "it will disappear from your statement within a few days.",
        ),
        "wedding_consultation": (
            "Hi, it's {agent}, one of the wedding florists at {shop}. I'd love to help. Are you "
            "free for a call on Thursday or Friday?",
        ),
        "corporate_orders": (
            "Hi, {agent} here; I look after our business accounts. I'll email you our corporate "
            "price list today and we can set up a call.",
        ),
        "funeral_arrangement": (
            "Hello, it's {agent} at {shop}. I'm very sorry for your loss. I'll take care of the "
            "tribute personally; could you confirm the time and address of the service?",
        ),
        "": (
            "Hi, it's {agent} from {shop}. I've looked into this and sorted it out; you'll get an "
            "email confirmation in the next few minutes.",
            "Hello, {agent} here. Thanks for your patience. I've made a note on your order and "
            "I'll call you this afternoon to go through the options.",
            "Hi, this is {agent} at {shop}. Sorry for the trouble. It's arranged, and we've "
            "added a little something extra to make up for it.",
        ),
    }
)

# --------------------------------------------------------------------------------------------
# When people write: weekday, hour, busy days before flower holidays
# --------------------------------------------------------------------------------------------

WEEKDAY_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 1.0, 1.05, 1.25, 0.8, 0.45)  # Monday first
# fmt: off
HOUR_WEIGHTS: tuple[float, ...] = (  # midnight to 11am, then noon to 11pm
    0.1, 0.05, 0.05, 0.05, 0.05, 0.1, 0.2, 0.5, 1.0, 1.6, 1.8, 1.7,
    1.5, 1.4, 1.4, 1.3, 1.3, 1.4, 1.5, 1.5, 1.3, 1.0, 0.6, 0.3,
)
# fmt: on
PEAK_INTENTS: tuple[str, ...] = (
    "same_day_delivery",
    "delivery_time",
    "order_status",
    "pricing",
    "gift_message",
)
PEAK_FACTOR = 1.2  # a day busier than this counts as a peak day, when PEAK_INTENTS triple
CHANNELS: tuple[str, ...] = ("chat", "email", "sms")
CHANNEL_WEIGHTS: tuple[float, ...] = (62, 23, 15)
QUESTIONS_WEIGHTS: tuple[float, ...] = (46, 30, 16, 8)  # 1, 2, 3 or 4 customer messages
FOLLOW_UP_DRIFT = 0.45
LABELLED_SHARE = 0.35
# Conversations start at least this long before `now`, so every reply is in the past.
CONVERSATION_ROOM = timedelta(hours=2)


def _holiday_factor(day: date) -> float:
    """How much busier than usual a day is before Valentine's, Mother's Day and Christmas."""
    if day.month == 2 and 10 <= day.day <= 14:
        return (1.4, 1.4, 2.0, 2.4, 3.0)[day.day - 10]
    if day.month == 12 and 18 <= day.day <= 24:
        return 1.6
    if day.month == 5:
        first_sunday = 1 + (6 - date(day.year, 5, 1).weekday()) % 7
        before = first_sunday + 7 - day.day  # days until the second Sunday of May
        if 0 <= before <= 3:
            return (2.8, 2.4, 1.8, 1.4)[before]
    return 1.0


def _day_weight(day: date) -> float:
    return WEEKDAY_WEIGHTS[day.weekday()] * _holiday_factor(day)


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def database_has_shops(*, session: Session) -> bool:
    """Whether any shop exists (operator scope)."""
    return session.exec(select(Tenant.id).limit(1)).first() is not None


def demo_exists(*, session: Session) -> bool:
    """Whether the demo workspace exists (operator scope)."""
    return session.exec(select(Tenant.id).where(col(Tenant.is_demo)).limit(1)).first() is not None


def demo_credentials() -> list[DemoLogin]:
    """The demo logins; show them only while a demo shop exists."""
    return [DemoLogin(s.name, u.username, u.role, u.password) for s in SHOPS for u in s.users]


def credentials_text() -> str:
    """The demo logins as an aligned table for the terminal."""
    logins = demo_credentials()
    header = ("Shop", "Username", "Role", "Password")
    rows = [header, *((d.shop, d.username, d.role.value, d.password) for d in logins)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "Demo logins (demo shops only):\n" + "\n".join(f"  {line.rstrip()}" for line in lines)


def create_demo_workspace(
    *, engine: Engine, seed: int = 7, days: int = 60, now: datetime | None = None
) -> DemoSummary:
    """Create both demo shops, their users and `days` of traffic, all in one transaction."""
    if days < 1:
        raise InvalidInput("The demo needs at least one day of traffic.")
    now = now or utcnow()
    if now.utcoffset() is None:
        raise InvalidInput("`now` must be a timezone-aware datetime.")
    started = time.perf_counter()
    # One transaction: a failure leaves no half-made demo that `demo --if-empty` would skip.
    with session_scope(None, engine=engine) as session:
        if demo_exists(session=session):
            raise InvalidInput("The demo workspace exists already.")
        shops = tuple(
            _create_shop(session, spec, seed, now.astimezone(UTC), days) for spec in SHOPS
        )
    models = tuple(_train_first_model(engine, shop) for shop in shops)
    return DemoSummary(shops, time.perf_counter() - started, models)


def _train_first_model(engine: Engine, shop: ShopCounts) -> str:
    """Train the shop's first model on its labelled messages, as a real run, and give every
    demo message that model's prediction: nothing the demo shows is made up."""
    from core import registry, training

    with session_scope(None, engine=engine) as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == shop.slug)).one()
        assert tenant.id is not None
    actor = Actor(None, tenant.id, Role.ADMIN, "demo-setup", tenant_name=tenant.name)
    with session_scope(actor, engine=engine) as session:
        run = training.start_run(session=session, actor=actor, trigger="auto")
    result = training.execute_run(engine=engine, actor=actor, run_id=run.id)
    if not result.deployed:
        return f"{shop.name}: first training run {result.status} ({result.error or 'not deployed'})"
    with session_scope(actor, engine=engine) as session:
        predicted = registry.fill_predictions(session=session, actor=actor)
    f1 = (result.metrics or {}).get("macro_f1", 0.0)
    return (
        f"{shop.name}: model v{result.model_version} trained (macro-F1 {f1:.2f}) and "
        f"predicted {predicted:,} messages"
    )


# --------------------------------------------------------------------------------------------
# Planning the traffic (pure: random.Random in, plain data out)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Exchange:
    """One customer message and the assistant's reply to it."""

    intent: str
    question: str
    asked_at: datetime
    answer: str
    answered_at: datetime
    reviewed_at: datetime | None  # set when the demo labels it as reviewed


@dataclass(frozen=True)
class _ConversationPlan:
    external_id: str
    customer_id: str
    channel: str
    started_at: datetime
    escalated: bool
    resolved: bool | None
    exchanges: tuple[_Exchange, ...]
    agent_reply: tuple[str, datetime] | None  # a person's answer after escalation

    @property
    def ended_at(self) -> datetime:
        return self.agent_reply[1] if self.agent_reply else self.exchanges[-1].answered_at


@dataclass(frozen=True)
class _Traffic:
    """What one shop's traffic is drawn from."""

    spec: _ShopSpec
    rng: random.Random
    now: datetime
    intents: dict[str, _IntentSpec]
    weights: tuple[float, ...]  # per intent, in `intents` order
    peak_weights: tuple[float, ...]
    slots: Mapping[str, tuple[str, ...]]


class _Slots(dict[str, str]):
    """Slot values for one message and its reply, drawn on first use so repeats agree."""

    def __init__(self, rng: random.Random, pools: Mapping[str, tuple[str, ...]]) -> None:
        super().__init__()
        self._rng, self._pools = rng, pools

    def __missing__(self, key: str) -> str:
        if key == "order_bare":
            value = str(self._rng.randint(40000, 59999))
        elif key == "order":
            value = "#" + self["order_bare"]
        elif key.endswith("2"):  # a second, different value: "{flower} but got {flower2}"
            value = self._rng.choice([v for v in self._pools[key[:-1]] if v != self[key[:-1]]])
        else:
            value = self._rng.choice(self._pools[key])
        self[key] = value
        return value


def _shop_intents(spec: _ShopSpec) -> dict[str, _IntentSpec]:
    names = spec.intents or tuple(i.name for i in INTENTS)
    return {i.name: i for i in INTENTS if i.name in names}


def _traffic(spec: _ShopSpec, seed: int, now: datetime) -> _Traffic:
    intents = _shop_intents(spec)
    boosts = dict(spec.boosts)
    weights = tuple(i.weight * boosts.get(i.name, 1.0) for i in intents.values())
    peak = tuple(w * (3 if n in PEAK_INTENTS else 1) for n, w in zip(intents, weights, strict=True))
    slots = {**SLOT_VALUES, "area": spec.areas, "agent": spec.staff, "shop": (spec.name,)}
    slots["sender"] = SLOT_VALUES["name"]
    # A string seed per shop: changing one shop's data never shifts the other's.
    rng = random.Random(f"{seed}:{spec.prefix}")  # noqa: S311 - demo data, not secrets
    return _Traffic(spec, rng, now, intents, weights, peak, slots)


def _plan_traffic(traffic: _Traffic, days: int) -> list[_ConversationPlan]:
    """Every conversation of one shop over the last `days` days, oldest first."""
    rng, spec = traffic.rng, traffic.spec
    count = round(spec.conversations_per_day * days * rng.uniform(0.95, 1.05))
    starts = sorted(_start_times(rng, traffic.now, days, count))
    return [_plan_conversation(traffic, n, at) for n, at in enumerate(starts, 1)]


def _start_times(rng: random.Random, now: datetime, days: int, count: int) -> list[datetime]:
    offsets = range(days)
    cum = list(accumulate(_day_weight((now - timedelta(days=d)).date()) for d in offsets))
    hour_cum = list(accumulate(HOUR_WEIGHTS))
    return [_start_time(rng, now, days, cum, hour_cum) for _ in range(count)]


def _start_time(
    rng: random.Random, now: datetime, days: int, cum: list[float], hour_cum: list[float]
) -> datetime:
    latest = now - CONVERSATION_ROOM
    for _ in range(50):
        day = rng.choices(range(days), cum_weights=cum)[0]
        hour = rng.choices(range(24), cum_weights=hour_cum)[0]
        at = (now - timedelta(days=day)).replace(
            hour=hour, minute=rng.randrange(60), second=rng.randrange(60), microsecond=0
        )
        if at <= latest:  # today's later hours have not happened yet
            return at
    # Only a one-day window early in the (UTC) morning gets here: any time in the window.
    room = int(CONVERSATION_ROOM.total_seconds())
    return latest - timedelta(seconds=rng.randrange(days * 86400 - room))


def _plan_conversation(traffic: _Traffic, number: int, started: datetime) -> _ConversationPlan:
    rng, spec = traffic.rng, traffic.spec
    intents = _conversation_intents(traffic, started)
    escalated = rng.random() < max(traffic.intents[name].escalation for name in intents)
    channel = rng.choices(CHANNELS, weights=CHANNEL_WEIGHTS)[0]
    exchanges, agent_reply = _plan_exchanges(traffic, intents, channel, started, escalated)
    customer_id = _customer_id(rng, spec.customers)
    external_id = f"{spec.prefix}-c-{number:06d}"
    return _ConversationPlan(
        external_id=external_id,
        customer_id=customer_id,
        channel=channel,
        started_at=started,
        escalated=escalated,
        resolved=_resolved(rng, escalated),
        exchanges=_with_personal_note(f"{spec.prefix}:{customer_id}", external_id, exchanges),
        agent_reply=agent_reply,
    )


# What regular customers tell the assistant about themselves now and then (core.memory
# extracts it). Each customer has one set of facts; a conversation mentions one of them.
ALLERGIES = ("lilies", "pollen", "chrysanthemums", "daisies")
FAVORITE_FLOWERS = ("peonies", "tulips", "sunflowers", "ranunculus", "roses")
PREFERENCES = ("roses", "tulips", "pastel colours", "wildflowers", "white flowers")
RECIPIENTS = ("mother", "wife", "husband", "sister", "grandmother", "best friend")
NAMES = ("Anna", "Ben", "Chloe", "Daniel", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jonas")
MONTHS = ("January", "March", "May", "June", "September", "October", "December")
NOTE_SHARE = 0.18  # of conversations where the customer mentions something about themselves


def _personal_notes(customer: str) -> list[str]:
    """The things one customer may say about themselves (the same every time)."""
    rng = random.Random(customer)  # noqa: S311 - demo data, not secrets
    notes = [
        f"My name is {rng.choice(NAMES)}.",
        f"I prefer {rng.choice(PREFERENCES)}.",
        f"My favorite flowers are {rng.choice(FAVORITE_FLOWERS)}.",
        f"It's for my {rng.choice(RECIPIENTS)}.",
        f"My {rng.choice(RECIPIENTS)}'s birthday is {rng.choice(MONTHS)} {rng.randint(1, 28)}.",
        f"Actually I prefer {rng.choice(PREFERENCES)} these days.",
    ]
    if rng.random() < 0.35:
        notes.append(f"I'm allergic to {rng.choice(ALLERGIES)}, so please leave them out.")
    if rng.random() < 0.2:
        notes.append("Never send carnations.")
    return notes


def _with_personal_note(
    customer: str, conversation: str, exchanges: tuple[_Exchange, ...]
) -> tuple[_Exchange, ...]:
    """Now and then the customer adds something about themselves to their first message.
    Its own random stream: the rest of the demo stays the same with or without notes."""
    rng = random.Random(conversation)  # noqa: S311 - demo data, not secrets
    if not exchanges or rng.random() >= NOTE_SHARE:
        return exchanges
    first = exchanges[0]
    question = f"{first.question.rstrip()} {rng.choice(_personal_notes(customer))}"
    return (replace(first, question=question), *exchanges[1:])


def _conversation_intents(traffic: _Traffic, started: datetime) -> list[str]:
    rng = traffic.rng
    peak = _holiday_factor(started.date()) > PEAK_FACTOR
    weights = traffic.peak_weights if peak else traffic.weights
    names = [rng.choices(list(traffic.intents), weights=weights)[0]]
    for _ in range(rng.choices((0, 1, 2, 3), weights=QUESTIONS_WEIGHTS)[0]):
        related = [n for n in RELATED.get(names[-1], ()) if n in traffic.intents]
        drift = related and rng.random() < FOLLOW_UP_DRIFT
        names.append(rng.choice(related) if drift else names[-1])
    return names


def _customer_id(rng: random.Random, customers: int) -> str:
    # Skewed towards low numbers: regulars write often, most customers once or twice.
    return f"cust-{int(customers * rng.random() ** 1.7) + 1:04d}"


def _resolved(rng: random.Random, escalated: bool) -> bool | None:
    weights = (55, 15, 30) if escalated else (82, 6, 12)
    return rng.choices((True, False, None), weights=weights)[0]


def _plan_exchanges(
    traffic: _Traffic, intents: list[str], channel: str, started: datetime, escalated: bool
) -> tuple[tuple[_Exchange, ...], tuple[str, datetime] | None]:
    """The customer's messages with the assistant's replies; on escalation a person answers last."""
    rng, at = traffic.rng, started
    exchanges: list[_Exchange] = []
    for index, name in enumerate(intents):
        intent, slots = traffic.intents[name], _Slots(rng, traffic.slots)
        question = _customer_text(rng, intent, slots, channel)
        hand_off = escalated and index == len(intents) - 1
        answer = _sentence(rng.choice(HANDOFFS if hand_off else intent.replies), slots)
        answered_at = at + timedelta(seconds=rng.randint(3, 25))
        reviewed_at = _review_time(rng, at, traffic.now)
        exchanges.append(_Exchange(name, question, at, answer, answered_at, reviewed_at))
        at = answered_at + timedelta(seconds=rng.randint(40, 600))
    agent_reply = None
    if escalated:  # the person answers the last question, with the same order number etc.
        template = rng.choice(AGENT_REPLIES.get(intents[-1], AGENT_REPLIES[""]))
        agent_at = exchanges[-1].answered_at + timedelta(minutes=rng.randint(2, 45))
        agent_reply = (template.format_map(slots), agent_at)
    return tuple(exchanges), agent_reply


def _review_time(rng: random.Random, asked_at: datetime, now: datetime) -> datetime | None:
    if rng.random() >= LABELLED_SHARE:
        return None
    return min(asked_at + timedelta(minutes=rng.randint(10, 2880)), now)


# --------------------------------------------------------------------------------------------
# How customers write: slots filled in, then greetings, typos, casing and punctuation
# --------------------------------------------------------------------------------------------


def _sentence(template: str, slots: _Slots) -> str:
    """The template filled in, starting with a capital ("Tulips last longest...")."""
    text = template.format_map(slots)
    return text[:1].upper() + text[1:]


def _customer_text(rng: random.Random, intent: _IntentSpec, slots: _Slots, channel: str) -> str:
    text = rng.choice(intent.phrases).format_map(slots)
    text = _greet(rng, text, channel)
    if rng.random() < 0.12:
        text = _typo(rng, text)
    text = _casing(rng, _punctuation(rng, text))
    if channel == "email" and rng.random() < 0.6:
        text = f"{text}\n\n{rng.choice(SIGN_OFFS)}\n{slots['sender']}"
    return text


def _greet(rng: random.Random, text: str, channel: str) -> str:
    if rng.random() < (0.7 if channel == "email" else 0.25):
        greeting = rng.choice(GREETINGS)
        first = text[0].lower() if greeting.endswith(",") else text[0]
        text = f"{greeting} {first}{text[1:]}"
    if rng.random() < 0.15:
        text = f"{text} {rng.choice(THANKS)}"
    return text


def _typo(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    candidates = [i for i, word in enumerate(words) if len(word) >= 5 and word.isalpha()]
    if not candidates:
        return text
    index = rng.choice(candidates)
    word, at = words[index], rng.randrange(1, len(words[index]) - 2)
    mistakes: tuple[Callable[[str, int], str], ...] = (
        lambda w, i: w[:i] + w[i + 1] + w[i] + w[i + 2 :],  # swapped letters
        lambda w, i: w[:i] + w[i + 1 :],  # missing letter
        lambda w, i: w[:i] + w[i] + w[i:],  # doubled letter
    )
    words[index] = rng.choice(mistakes)(word, at)
    return " ".join(words)


def _punctuation(rng: random.Random, text: str) -> str:
    roll = rng.random()
    if text.endswith("?") and roll < 0.15:
        return text + "?"
    if text.endswith((".", "?", "!")) and roll < 0.35:
        return text[:-1]
    return text


def _casing(rng: random.Random, text: str) -> str:
    roll = rng.random()
    if roll < 0.2:
        return text.lower()
    if roll < 0.22 and len(text) < 60:
        return text.upper()
    return text


# --------------------------------------------------------------------------------------------
# Writing one shop
# --------------------------------------------------------------------------------------------


def _create_shop(
    session: Session, spec: _ShopSpec, seed: int, now: datetime, days: int
) -> ShopCounts:
    tenant = create_tenant(session=session, name=spec.name, is_demo=True)
    assert tenant.id is not None
    set_tenant(session, tenant.id)
    actor = Actor(None, tenant.id, Role.ADMIN, "demo-setup", "Demo set-up", spec.name)
    users = [_create_user(session, actor, user) for user in spec.users]
    if spec is SHOPS[0]:  # shared by every shop: one set of starting profiles is enough
        seed_default_profiles(session=session, actor=actor)
    admin_id = next(u.id for u in users if u.role is Role.ADMIN)
    traffic = _traffic(spec, seed, now)
    _add_intents(session, tenant.id, traffic.intents.values(), now - timedelta(days=days))
    plans = _plan_traffic(traffic, days)
    counts = _write_traffic(session, tenant.id, admin_id, plans)
    shop = ShopCounts(spec.name, tenant.slug, len(users), len(traffic.intents), **counts)
    _record_creation(session, actor, shop, seed, days)
    review_groups.refresh(session=session, actor=actor, text_hashes=None)
    memory.extract_in_session(session=session, actor=actor)
    memory_patterns.aggregate(session=session, actor=actor)
    session.flush()  # while the session is still bound to this shop (RLS checks the write)
    set_tenant(session, None)
    return shop


def _create_user(session: Session, actor: Actor, user: _DemoUser) -> UserView:
    data = parse_user_create(
        username=user.username,
        role=user.role.value,
        password=user.password,
        display_name=user.display_name,
    )
    return create_user(session=session, actor=actor, data=data)


def _add_intents(
    session: Session, tenant_id: int, intents: Iterable[_IntentSpec], at: datetime
) -> None:
    session.add_all(
        Intent(tenant_id=tenant_id, name=i.name, description=i.description, created_at=at)
        for i in intents
    )
    session.flush()


def _record_creation(
    session: Session, actor: Actor, shop: ShopCounts, seed: int, days: int
) -> None:
    after = {
        "seed": seed,
        "days": days,
        "users": shop.users,
        "intents": shop.intents,
        "conversations": shop.conversations,
        "messages": shop.messages,
        "examples": shop.examples,
        "labelled": shop.labelled,
        "escalated": shop.escalated,
    }
    audit.record(
        session=session,
        actor=actor,
        action="demo.create",
        entity_type="tenant",
        entity_id=shop.slug,
        after=after,
        reason="Demo workspace",
    )


def _write_traffic(
    session: Session, tenant_id: int, reviewer_id: int, plans: list[_ConversationPlan]
) -> dict[str, int]:
    """Bulk-insert conversations, then messages, then examples (each needs the ids before)."""
    conversation_ids = _insert_ids(session, Conversation, _conversation_rows(tenant_id, plans))
    message_rows, asked = _message_rows(tenant_id, plans, conversation_ids)
    message_ids = _insert_ids(session, Message, message_rows)
    example_rows = [
        _example_row(tenant_id, reviewer_id, plan, exchange, conversation_id, message_ids[row])
        for (plan, exchange, conversation_id), row in asked
    ]
    if example_rows:  # no ids needed: nothing points at an example yet
        session.exec(insert(Example), params=example_rows)
    return {
        "conversations": len(plans),
        "messages": len(message_rows),
        "examples": len(example_rows),
        "labelled": sum(1 for row in example_rows if row["reviewed"]),
        "escalated": sum(1 for plan in plans if plan.escalated),
    }


def _insert_ids(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> list[int]:
    """Insert many rows at once; their ids come back in the order of `rows`.

    PostgreSQL does this in batches of 1,000; SQLite needs a statement per row to promise the
    order, which inside one transaction is still quick (about 0.1 s for 6,000 rows).
    """
    if not rows:
        return []
    id_column = model.__table__.c.id  # type: ignore[attr-defined]
    statement = insert(model).returning(id_column, sort_by_parameter_order=True)
    return list(session.exec(statement, params=rows).scalars())


def _conversation_rows(tenant_id: int, plans: list[_ConversationPlan]) -> list[dict[str, Any]]:
    return [
        {
            "tenant_id": tenant_id,
            "external_id": plan.external_id,
            "customer_id": plan.customer_id,
            "channel": plan.channel,
            "started_at": plan.started_at,
            "ended_at": plan.ended_at,
            "escalated": plan.escalated,
            "resolved": plan.resolved,
        }
        for plan in plans
    ]


_Asked = tuple[tuple[_ConversationPlan, _Exchange, int], int]


def _message_rows(
    tenant_id: int, plans: list[_ConversationPlan], conversation_ids: list[int]
) -> tuple[list[dict[str, Any]], list[_Asked]]:
    """Message rows in conversation order, and where each customer message sits among them."""
    rows: list[dict[str, Any]] = []
    asked: list[_Asked] = []

    def add(conversation_id: int, role: str, text: str, at: datetime) -> None:
        rows.append(
            {
                "tenant_id": tenant_id,
                "conversation_id": conversation_id,
                "role": role,
                "text": text,
                "created_at": at,
            }
        )

    for plan, conversation_id in zip(plans, conversation_ids, strict=True):
        for exchange in plan.exchanges:
            asked.append(((plan, exchange, conversation_id), len(rows)))
            add(conversation_id, "customer", exchange.question, exchange.asked_at)
            add(conversation_id, "assistant", exchange.answer, exchange.answered_at)
        if plan.agent_reply:
            add(conversation_id, "agent", *plan.agent_reply)
    return rows, asked


def _example_row(
    tenant_id: int,
    reviewer_id: int,
    plan: _ConversationPlan,
    exchange: _Exchange,
    conversation_id: int,
    message_id: int,
) -> dict[str, Any]:
    """An example as live traffic would leave it: no prediction (no model yet), maybe a label."""
    reviewed = exchange.reviewed_at is not None
    return {
        "tenant_id": tenant_id,
        "text": exchange.question,
        "text_hash": text_hash(exchange.question),
        "content_hash": None,  # live occurrences are never de-duplicated
        "source": ExampleSource.SYNTHETIC.value,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "escalated": plan.escalated,
        "ai_response": exchange.answer,
        "reviewed": reviewed,
        "status": (ExampleStatus.REVIEWED if reviewed else ExampleStatus.PENDING).value,
        "correct_intent": exchange.intent if reviewed else None,
        "reviewer_id": reviewer_id if reviewed else None,
        "reviewed_at": exchange.reviewed_at,
        "created_at": exchange.asked_at,
        "updated_at": exchange.reviewed_at or exchange.asked_at,
        "version": 1,
    }
