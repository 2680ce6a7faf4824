"""The global merchant pool: plausible counterparty names per category, fixed (seed-independent).

Each category owns a contiguous block of merchant codes; `MerchantPool.names[code]` is the name.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from finrisk.schema import CATEGORIES

# Person-to-person transfers, in and out, name people with these surnames.
_SURNAMES: tuple[str, ...] = (
    "Smith",
    "Garcia",
    "Muller",
    "Rossi",
    "Kowalski",
    "Novak",
    "Silva",
    "Jensen",
    "Dubois",
    "Okafor",
    "Tanaka",
    "Larsen",
    "Moreau",
    "Costa",
    "Weber",
)

# category -> (name stems, suffixes, pool size). Names are stem + suffix, then numbered
# branches ("#2") when the pool is larger than the combinations.
_POOLS: dict[str, tuple[tuple[str, ...], tuple[str, ...], int]] = {
    "salary": (
        (
            "Northwind",
            "Acme",
            "Globex",
            "Initech",
            "Umbrella",
            "Stark",
            "Wayne",
            "Hooli",
            "Vandelay",
            "Soylent",
            "Cyberdyne",
            "Tyrell",
            "Wonka",
            "Oscorp",
            "Gringotts",
        ),
        ("Ltd Payroll", "Inc Payroll", "Group Salaries", "Health Trust", "Logistics"),
        150,
    ),
    "transfer_in": (
        ("A.", "B.", "C.", "D.", "E.", "F.", "G.", "H.", "J.", "K.", "L.", "M."),
        _SURNAMES,
        180,
    ),
    "refund": (
        ("Refund",),
        (
            "ShopRight",
            "Amazona",
            "Zalendo",
            "TechHub",
            "HomeGoods",
            "StyleBox",
            "Bookworm",
            "PlayStore",
            "TravelNest",
            "SkyAir",
        ),
        10,
    ),
    "rent": (
        (
            "Oakwood",
            "Riverside",
            "Maple",
            "Harbor",
            "Summit",
            "Cedar",
            "Lakeside",
            "Parkview",
            "Kingsley",
            "Brookfield",
            "Ashford",
            "Willow",
        ),
        ("Properties", "Lettings", "Estates", "Housing Assoc", "Residential"),
        60,
    ),
    "utilities": (
        ("City", "Metro", "National", "Green", "Blue"),
        ("Power", "Water", "Gas", "Broadband", "Mobile"),
        25,
    ),
    "subscriptions": (
        (
            "StreamFlix",
            "Tunely",
            "GymOne",
            "CloudBox",
            "NewsDaily",
            "GameVault",
            "FitPulse",
            "BookClub",
            "VidNow",
            "PodMax",
            "LearnIt",
            "SafeVPN",
            "MealKit",
            "PhotoVault",
        ),
        ("",),
        14,
    ),
    "groceries": (
        (
            "FreshMart",
            "GreenGrocer",
            "ValueFoods",
            "DailyBasket",
            "Corner Market",
            "PrimeFoods",
            "HarvestHub",
            "QuickShop",
            "FarmStand",
            "MegaSave",
        ),
        ("",),
        160,
    ),
    "dining": (
        (
            "Golden",
            "Blue",
            "Little",
            "Red",
            "Olive",
            "Rustic",
            "Urban",
            "Sunny",
            "Silver",
            "Royal",
            "Happy",
            "Green",
        ),
        (
            "Dragon",
            "Bistro",
            "Cafe",
            "Pizzeria",
            "Noodle Bar",
            "Grill",
            "Taqueria",
            "Bakery",
            "Sushi",
            "Diner",
            "Kebab",
            "Burger",
        ),
        400,
    ),
    "transport": (
        (
            "MetroTransit",
            "CityCab",
            "RideNow",
            "FuelStop",
            "ParkEasy",
            "RailLink",
            "BikeShare",
            "QuickFuel",
        ),
        ("",),
        60,
    ),
    "shopping": (
        (
            "ShopRight",
            "Amazona",
            "Zalendo",
            "HomeGoods",
            "StyleBox",
            "Bookworm",
            "TrendyWear",
            "GiftCorner",
            "SportZone",
            "PetPals",
            "KidsWorld",
            "DecoHome",
            "Outlet",
            "MarketPlace",
        ),
        ("", " Online", " Store"),
        260,
    ),
    "entertainment": (
        (
            "CineMax",
            "BowlArena",
            "TicketHub",
            "PlayStore",
            "ConcertLive",
            "MuseumPass",
            "ArcadeZone",
            "BetBuddy",
            "LuckySpin",
            "ComedyClub",
        ),
        ("",),
        110,
    ),
    "health": (
        ("CarePharmacy", "WellClinic", "SmileDental", "VisionPlus", "HealthHub", "PhysioFirst"),
        ("",),
        80,
    ),
    "travel": (
        (
            "SkyAir",
            "TravelNest",
            "StayWell Hotels",
            "EuroRail",
            "SunTours",
            "BookAway",
            "CarHire Co",
            "JetFare",
        ),
        ("",),
        60,
    ),
    "electronics": (
        ("TechHub", "GadgetWorld", "PixelStore", "VoltShop", "ByteMart", "SoundCity", "PhoneZone"),
        ("", " Online"),
        50,
    ),
    "gift_cards": (
        ("GiftCardMall", "CardCentral", "eGiftNow", "PrepaidPlus", "VoucherBay"),
        ("",),
        25,
    ),
    "cash_withdrawal": (
        ("ATM",),
        ("FirstBank", "CityBank", "Unity Savings", "Cardtronic", "PostBank", "Metro Credit Union"),
        120,
    ),
    "transfer_out": (
        (
            "To A.",
            "To B.",
            "To C.",
            "To D.",
            "To E.",
            "To J.",
            "To K.",
            "To M.",
            "To P.",
            "To R.",
            "To S.",
            "To T.",
        ),
        _SURNAMES,
        200,
    ),
}


BETTING_BRANDS = ("BetBuddy", "LuckySpin")


def _names(stems: tuple[str, ...], suffixes: tuple[str, ...], size: int) -> list[str]:
    base = [
        f"{stem} {suffix}".strip() if suffix and not suffix.startswith(" ") else f"{stem}{suffix}"
        for stem, suffix in itertools.product(stems, suffixes)
    ]
    names: list[str] = []
    branch = 1
    while len(names) < size:
        for name in base:
            names.append(name if branch == 1 else f"{name} #{branch}")
            if len(names) == size:
                break
        branch += 1
    return names


@dataclass(frozen=True)
class MerchantPool:
    names: np.ndarray  # object array, indexed by merchant code
    offset: np.ndarray  # int64 per category index (order of CATEGORIES)
    size: np.ndarray  # int64 per category index
    betting: np.ndarray  # codes of the betting merchants (within entertainment)

    def popular(self, category: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Merchant codes for category indices, skewed to popular ones by uniforms `u`."""
        return self.offset[category] + np.minimum(
            (self.size[category] * u**2).astype(np.int64), self.size[category] - 1
        )


def build_pool() -> MerchantPool:
    names: list[str] = []
    offsets, sizes = [], []
    for category in CATEGORIES:
        stems, suffixes, size = _POOLS[category]
        offsets.append(len(names))
        sizes.append(size)
        names.extend(_names(stems, suffixes, size))
    betting = [i for i, name in enumerate(names) if name.startswith(BETTING_BRANDS)]
    return MerchantPool(
        names=np.array(names, dtype=object),
        betting=np.array(betting, dtype=np.int64),
        offset=np.array(offsets, dtype=np.int64),
        size=np.array(sizes, dtype=np.int64),
    )
