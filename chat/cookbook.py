"""The demo model's cookbook: a few real recipes and a plausible one for any other dish, offline."""

from __future__ import annotations

import re

MAPO_TOFU = {
    "name": "麻婆豆腐",
    "servings": 3,
    "total_minutes": 25,
    "ingredients": [
        {"item": "嫩豆腐", "amount": "400 克"},
        {"item": "牛肉末", "amount": "100 克"},
        {"item": "郫县豆瓣酱", "amount": "1.5 汤匙"},
        {"item": "豆豉", "amount": "1 茶匙"},
        {"item": "花椒粉", "amount": "1 茶匙"},
        {"item": "蒜末", "amount": "2 瓣"},
        {"item": "姜末", "amount": "1 小块"},
        {"item": "水淀粉", "amount": "2 汤匙"},
        {"item": "葱花", "amount": "适量"},
    ],
    "steps": [
        "豆腐切成 2 厘米的方块,放入加盐的沸水中焯 1 分钟,捞出备用。",
        "热锅下油,放入牛肉末炒至酥香变色。",
        "加入豆瓣酱和豆豉,小火炒出红油,再下姜蒜炒香。",
        "加入一碗清水烧开,轻轻放入豆腐,中火煮 5 分钟入味。",
        "分两次淋入水淀粉勾芡,轻推锅底使汤汁浓稠。",
        "出锅装盘,撒上花椒粉和葱花即可。",
    ],
}

PANCAKES = {
    "name": "Fluffy pancakes",
    "servings": 4,
    "total_minutes": 20,
    "ingredients": [
        {"item": "plain flour", "amount": "200 g"},
        {"item": "milk", "amount": "300 ml"},
        {"item": "eggs", "amount": "2"},
        {"item": "sugar", "amount": "2 tbsp"},
        {"item": "baking powder", "amount": "2 tsp"},
        {"item": "butter, melted", "amount": "30 g"},
        {"item": "salt", "amount": "a pinch"},
    ],
    "steps": [
        "Whisk the flour, sugar, baking powder and salt in a bowl.",
        "Beat the eggs with the milk and melted butter, then stir into the dry ingredients until just combined.",
        "Rest the batter for 5 minutes while a pan heats over medium heat.",
        "Pour a ladle of batter into the lightly buttered pan; flip when bubbles appear.",
        "Cook the other side for a minute and keep warm while you make the rest.",
    ],
}

COOKBOOK = {"麻婆豆腐": MAPO_TOFU, "mapo tofu": MAPO_TOFU, "mapo": MAPO_TOFU, "pancake": PANCAKES}

_NOT_FOOD = re.compile(r"\d\s*[-+*/x×÷]\s*\d|\b(weather|stock|capital of|who is|what is the time)\b", re.IGNORECASE)


TRAILING_PUNCTUATION = " .!?,。!?"
"""Characters trimmed from either end of a dish's name, in Latin and CJK punctuation."""


def _dish_name(request: str) -> str:
    text = re.sub(
        r"(?i)^(please\s+)?(give me|write|make|a|an|the|recipe for|recipe|how to (cook|make))\s+", "", request.strip()
    )
    text = re.sub(r"(?i)\b(recipe|please)\b", "", text).strip(TRAILING_PUNCTUATION)
    return text[:60] or "House special"


def compose_recipe(request: str) -> dict:
    """The demo model's recipe for a request, as the JSON object the `Recipe` schema takes."""
    lowered = request.lower()
    for key, recipe in COOKBOOK.items():
        if key in lowered or key in request:
            return recipe
    if _NOT_FOOD.search(request):
        return {
            "name": "Not a recipe",
            "servings": None,
            "total_minutes": None,
            "ingredients": [],
            "steps": ["I only write recipes. Ask for a dish, for example 麻婆豆腐 or pancakes."],
        }
    dish = _dish_name(request)
    return {
        "name": dish[:1].upper() + dish[1:],
        "servings": 2,
        "total_minutes": 30,
        "ingredients": [
            {"item": f"main ingredient for {dish}", "amount": "300 g"},
            {"item": "onion", "amount": "1"},
            {"item": "garlic", "amount": "2 cloves"},
            {"item": "olive oil", "amount": "2 tbsp"},
            {"item": "salt and pepper", "amount": "to taste"},
        ],
        "steps": [
            "Prepare and chop the ingredients.",
            "Soften the onion and garlic in the oil over medium heat.",
            f"Add the main ingredient for {dish} and cook until done.",
            "Season to taste and serve warm.",
            "(A demo recipe: pick a real model for a real one.)",
        ],
    }
