"""The crisis classifier: deterministic rules that put a user's utterance at a risk level.

Levels: 0 none; 1 ambiguous distress (one direct safety question, no hotline push); 2 clear
self-harm or suicidal ideation; 3 imminent (a plan, means at hand, a time, or an act under way).
Code decides the level, never a model, and the same words always get the same level.

How it reads an utterance, in order:
1. Quoted speech and song lyrics are removed, unless the user is quoting themselves
   ("I told my therapist 'I want to die'").
2. Idioms are removed ("work is killing me", "dead tired", "I could die of embarrassment"), so
   "work is killing me and I want to die" still reads as ideation.
3. Each clause is matched against signal patterns. A signal is dropped when it is negated in its
   clause ("I would never hurt myself", "killing myself is not something I'd do"), when its
   subject is someone else ("my friend wants to kill herself"), or when it is an accident
   ("I burned myself on the stove"). A denied plan or means is none ("I don't have a plan").
   A time counts said anywhere in the sentence of what it makes imminent ("I'm alone tonight
   and I want to kill myself"), or said on its own ("...kill myself. Tonight."): a missed
   imminent risk costs more than a false alarm. It does not count with self-harm or ideation
   told of a remote past ("I cut myself when I was 15, now I'm 30"), nor as the time of a
   scheduled event ("I want to die, my therapy appointment is tomorrow"), nor as the time of
   what is denied in its clause ("I want to die but I'm not going to do it tonight", "...but
   not tonight"); a denial that is not one still times it ("I can't promise I won't do it
   tonight").
   Not being safe, said of oneself ("I'm not safe", "I can't promise I'll be safe tonight"), is
   a disclosure of risk to self, and a time makes it imminent; not safe somewhere or from
   someone ("I don't feel safe walking home at night") is not. Not feeling safe, bare, and a
   doubt of living through the night ("I don't think I'll survive tonight") are ambiguous.
4. Signals combine into a level; context from the conversation (the assistant just asked a
   safety question; the user spoke of ideation earlier) can raise or settle it. An answer is
   read the way the question was asked: "no" to "are you thinking of ending your life?" denies
   a risk, "no" to "are you safe right now?" discloses one, and a bare yes or no to both at
   once says neither. An act left
   unnamed and given a time ("I'm doing it tonight", "tonight is the night") is imminent with
   ideation, with hopelessness (for "tonight is the night"), or with ideation denied: "I don't
   want to die but I might do it tonight" still says when; so does a goodbye or a stockpile
   ("I've written letters to everyone and I'm doing it tonight"). Some things are imminent
   without a word of intent: means made ready ("the rope is ready", "I've tied a noose", "a
   knife to my wrist", "I've locked myself in with a razor"), the gas on in a room shut up, a
   height stood on, the gas on or a knife held with hopelessness ("I'm on the bridge and I
   can't do this anymore"), self-harm now with a wound that will not stop bleeding, the amount
   that would kill looked up with enough at hand, the rest of the pills announced, and a
   goodbye plainly the last ("this is goodbye, tell them I loved them"). A bridge, ledge or
   roof's edge said with nothing after it ("I'm standing on the bridge"), or a knife held, is a
   disclosure; said with a walk, a view, a meal or a job it is none ("...taking photos"). As
   the answer to a safety question, a way and a time ("I know how and when"), an act announced
   or means at hand is imminent.
The reason is a short code for reviewers and the crisis log, never the user's words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

CrisisLevel = Literal[0, 1, 2, 3]

Signal = Literal[
    "ideation",
    "passive_ideation",
    "indirect_ideation",
    "self_harm",
    "past_attempt",
    "suicidal_intent",
    "unsafe",
    "act_with_method",
    "act_in_progress",
    "plan",
    "preparation",
    "means",
    "acquired_means",
    "time_future",
    "time_now",
    "do_it",
    "time_set",
    "jump_wish",
    "means_at_hand",
    "means_ready",
    "at_height",
    "at_height_bare",
    "means_in_hand",
    "gas_on",
    "gas_let_on",
    "room_sealed",
    "everyday_reason",
    "bleeding",
    "farewell",
    "last_words",
    "distress",
    "third_party",
    "shared",
]
IDEATION_SIGNALS: Final[frozenset[Signal]] = frozenset(
    {
        "ideation",
        "passive_ideation",
        "indirect_ideation",
        "self_harm",
        "past_attempt",
        "suicidal_intent",
        "unsafe",
    }
)


REASON_CODES: Final = frozenset(
    {
        # level 3
        "act_in_progress", "act_with_method", "plan", "means", "timeframe", "farewell",
        "plan_after_ideation",
        # level 2
        "past_attempt", "suicidal_intent", "self_harm", "ideation", "shared_ideation",
        "passive_ideation", "indirect_ideation", "affirmed_after_check", "preparation", "unsafe",
        "unsafe_after_check", "means_at_hand", "at_height",
        # level 1
        "distress", "unclear_after_check",
        # level 0
        "third_party", "negated", "accidental", "quoted", "idiom", "denied_after_check", "none",
    }
)  # fmt: skip
"""Every reason the classifier gives: a closed set of codes, never the user's words."""


SafetyQuestion = Literal["risk", "safe", "both"]


@dataclass(frozen=True)
class ScreeningContext:
    """What the conversation says around the utterance (never its text)."""

    after_safety_check: bool = False
    """The assistant's previous line asked the user directly about suicide or self-harm."""
    safety_question: SafetyQuestion = "risk"
    """What it asked: about a risk ("are you thinking of ending your life?": a yes is the
    risk), whether they are safe ("are you safe right now?": a no is), or both at once."""
    ideation_earlier: bool = False
    """An earlier user turn of this conversation was at level 2 or more."""


@dataclass(frozen=True)
class CrisisAssessment:
    """A level and the reason code for it."""

    level: CrisisLevel
    reason: str


@dataclass(frozen=True)
class _Rule:
    signal: Signal
    pattern: re.Pattern[str]
    negatable: bool = True
    """Dropped when negated in its clause ("I'm not suicidal")."""
    needs_own_subject: bool = False
    """Dropped when its subject is someone else ("my friend wants to die")."""
    reason: str | None = None
    negated_on_its_verb: bool = False
    """Negated only by a "not" on its own verb ("I don't have a plan", "I haven't bought a
    gun"), not by one elsewhere in its clause ("there is no other way i have a plan")."""
    unless: re.Pattern[str] | None = None
    """Dropped when this is said in its sentence, idioms included (a word of another sentence
    of a long turn must not silence a disclosure): what makes its words everyday ("I turned the gas on to cook", "mosquito bites, I scratched them until
    they bled", "this is my last message, my battery is dying")."""
    needs: re.Pattern[str] | None = None
    """Counted only when this is said somewhere in the utterance too, idioms aside: "I'm going
    to take the rest" is an overdose only when a medicine was spoken of."""


def _rule(
    signal: Signal,
    pattern: str,
    *,
    negatable: bool = True,
    own_subject: bool = False,
    reason: str | None = None,
    negated_on_its_verb: bool = False,
    unless: str | None = None,
    needs: str | None = None,
) -> _Rule:
    return _Rule(
        signal,
        re.compile(pattern),
        negatable,
        own_subject,
        reason,
        negated_on_its_verb,
        re.compile(unless) if unless else None,
        re.compile(needs) if needs else None,
    )


# -- normalising ------------------------------------------------------------------------------

_CONTRACTIONS: Final = [
    (re.compile(p), r)
    for p, r in (
        (r"[\u2018\u2019\u02bc`]", "'"),
        (r"[\u201c\u201d]", '"'),
        (r"\bcan'?t\b", "cannot"),
        (r"\bwon'?t\b", "will not"),
        (r"\bi'?m\b", "i am"),
        (r"\b(it|that|what|there|here|who)'s\b", r"\1 is"),
        (r"\b(do|does|did|is|are|was|were|have|has|had|would|could|should|must|need)n'?t\b",
         r"\1 not"),
        (r"\b(i|you|we|they|he|she|it)'d\b", r"\1 would"),
        (r"\b(i|you|we|they)'?ve\b", r"\1 have"),
        (r"\b(i|you|we|they|he|she|it)'ll\b", r"\1 will"),
        (r"\b(you|we|they)'re\b", r"\1 are"),
        (r"\bwanna\b", "want to"),
        (r"\bgonna\b", "going to"),
        (r"\bgotta\b", "got to"),
        (r"\bkinda\b", "kind of"),
        (r"\bself[- ]harm", "selfharm"),
        (r"\bunaliving\b", "killing"),
        (r"\bunalived\b", "killed"),
        (r"\bunalive\b", "kill"),
        (r"\s+", " "),
    )
]  # fmt: skip

# Quoted spans: double quotes, or single quotes that open after a space (so "I'm" is a word).
_QUOTE_SPAN: Final = re.compile(r"\"[^\"]*\"|(?:(?<=\s)|^)'.+?'(?=[\s,.!?;:]|$)")
# A quote is the user's own words when they say they said (wrote, thought) it.
_OWN_SPEECH: Final = re.compile(
    r"\bi (?:\w+ ){0,2}?(?:said|say|saying|told|tell|telling|wrote|write|writing|texted|typed|"
    r"thought|think|thinking|screamed|yelled|whispered|posted|journaled)\b[^.!?\"']{0,40}$"
)
_LYRIC_OR_READING: Final = re.compile(
    r"\b(?:song|lyrics?|line|chorus|verse|poem|quote|headline|caption|title)"
    r" (?:goes|says|is|was|went|that goes|reads|read)\b[^.!?;]*"
)

_IDIOMS: Final = re.compile(
    "|".join(
        (
            r"\b\w+ (?:is|are|was|were) (?:\w+ )?killing me\b",
            r"\b(?:it|this|that) is killing me\b",
            r"\bdead (?:tired|beat|on my feet|serious|set|end|last|inside lol)\b",
            r"\b(?:die|died|dying|dead) (?:of|from) (?:embarrassment|shame|laughter|laughing|"
            r"boredom|thirst|hunger|curiosity|heat|the heat|cold|cuteness|jealousy|envy|"
            r"excitement|happiness)\b",
            r"\b(?:died|dying|dead) laughing\b",
            r"\bdying to (?:see|know|try|go|meet|hear|get|watch|read|tell|find|have|eat|visit)\b",
            r"\bto die for\b",
            r"\bdie ?-?hard\b",
            r"\b(?:would|could) kill for\b",
            r"\bkill(?:ing|ed)? (?:it|time|some time)\b",
            r"\b(?:that|the|this|your|his|her) (?:joke|comment|video|meme|show|story) "
            r"(?:killed|kills|is killing) me\b",
            r"\b(?:bored|scared|sick|tired|worried|frightened|freezing|starving) to death\b",
            r"\b(?:phone|battery|laptop|car|plant|plants|computer|tablet|torch|flashlight|"
            r"headphones|charger|engine) (?:is |was |has |just )?(?:died|dead|dying)\b",
            r"\b(?:the )?death of me\b",
            r"\b(?:will|would|is going to|going to) kill me if\b",
            r"\bso (?:hungry|happy|embarrassed|excited|full|thirsty|bored) (?:that )?i could "
            r"(?:just )?die\b",
            r"\bover my dead body\b",
            r"\bdrop dead\b",
            r"\bkill two birds\b",
            r"\bdead to me\b",
            # Frustration at a task, not a head hit: "banging my head against the wall with
            # this bug", "like banging my head against a brick wall".
            r"\b(?:bang|bangs|banged|banging|hit|hitting) (?:my|our) heads? against (?:a|the) "
            r"(?:brick wall\b|wall (?:(?:with|over|about|on) (?:this|that|these|those|it)\b|"
            r"with the\b|trying to (?:fix|figure|understand|solve|work out|sort|debug|explain|"
            r"convince|learn)\b))",
            r"\b(?:is|was|feels|it felt|been) (?:just |literally )?like (?:bang|banging|hitting) "
            r"(?:my|our) heads? against (?:a|the) (?:brick )?wall\b",
        )
    )
)

_SENTENCE_BREAK: Final = re.compile(r"[.!?;]+")
# Negation and subjects reach only within a clause; patterns may span clauses ("...sleep and
# never wake up").
_CLAUSE_BREAK: Final = re.compile(r",|\b(?:but|and|so|because|though|although|however|yet|or)\b")

# -- signals -----------------------------------------------------------------------------------

_PEOPLE: Final = (
    r"friend|friends|brother|sister|mum|mom|mother|dad|father|son|daughter|wife|husband|"
    r"partner|boyfriend|girlfriend|roommate|flatmate|coworker|colleague|cousin|aunt|uncle|"
    r"grandma|grandpa|grandmother|grandfather|neighbour|neighbor|boss|kid|child|teenager|man|"
    r"woman|guy|girl|boy|character|celebrity|singer|student|patient|client|classmate|teacher|"
    r"family|parents|ex|bestie|baby"
)
# Those one may wish to be with again when they have died: people, and the names grandparents go by.
_KIN: Final = rf"(?:{_PEOPLE}|nan|nana|nanna|nanny|gran|granny|grandad|granddad|gramps|nonna)"
_OTHER_SUBJECT: Final = re.compile(
    rf"\b(?:he|she|they|him|her|them|his|their|you|your|someone|somebody|people|"
    rf"he is|she is|(?:my|our|a|the|his|her|their|your) (?:\w+ )?(?:{_PEOPLE}))\b"
)
_OWN_SUBJECT: Final = re.compile(r"\b(?:i|me|myself)\b")

# "take them all" said of people or things carried somewhere: not the act.
_TAKEN_SOMEWHERE: Final = (
    r" (?:to|home|out|with|along|back|for|into|on|in|over|around|across|there|here|away)\b"
)
# The whole stock taken at once; said after an announcing verb by the rules that use it.
_TAKE_ALL: Final = rf"tak(?:e|ing) (?:them all|all of them)\b(?!{_TAKEN_SOMEWHERE})"
# A way to die named as something wanted or thought about ("jump in front of a train").
_JUMP: Final = (
    r"jump(?:ing)? (?:off|from) (?:a|the|that|this) (?:bridge|building|roof|cliff|balcony|ledge|"
    r"tower)|jump(?:ing)? in front of (?:a|the) (?:train|bus|car|truck|lorry)"
    r"|throw(?:ing)? myself (?:off|in front of|under)"
    # A crash meant: "driving off the road", "drive my car into a tree".
    r"|driv(?:e|ing) (?:my car |the car )?(?:off (?:a|the) (?:road|bridge|cliff)|into (?:a|the) "
    r"(?:wall|tree|lorry|truck|river|sea|canal|oncoming traffic))|crash(?:ing)? my car on purpose"
)
# "Things" as in a life, not a relationship or a meeting ("end things with him").
_END_THINGS: Final = (
    r"end(?:ing)? things\b(?!(?: here| there| now)? (?:with|between|off|at work|early|"
    r"for (?:today|now|tonight|the day|the night|the week)\b))"
)

# Where the speaker is: on a height or by the tracks ("I'm standing on the bridge"). Not a roof
# terrace or rooftop bar, nor the bridge of a guitar or nose.
_AT_A_HEIGHT: Final = (
    r"\b(?:am|standing|sitting|stood|sat|climbed|walked|drove|driving|walking) (?:up )?"
    r"(?:on|onto|at|by|near|to|on top of|over to|out to|out on) (?:the |a |this |that )?"
    r"(?:edge of (?:the |a )?)?(?:bridge|ledge|roof|rooftop|balcony|overpass|cliff|cliffs|"
    r"train tracks|tracks|railway|platform edge)\b"
)
_NOT_A_HEIGHT: Final = (
    r"(?! (?:terrace|garden|bar|party|pool|deck|restaurant|of (?:my|the|a|his|her) "
    r"(?:guitar|violin|nose|song|ship)))"
)
# The height said with nothing after it in its sentence ("I'm standing on the bridge", "I'm on
# the edge of the roof right now"): no walk, no view, no errand told; a clinician asks at once.
# What follows it ("...taking photos", "...of my guitar") makes it something else.
_ON_THE_EDGE: Final = (
    r"\bi am (?:(?:standing|sitting|stood|sat|up|out|right|here) )?(?:on|at|by|on top of|up on|"
    r"out on) (?:(?:the |a |this |that )?(?:edge of (?:the |a |this )?(?:bridge|roof|building|"
    r"cliff|platform|(?:multi-storey )?car park|multi-storey|balcony)|top of (?:the |a )?"
    r"(?:building|(?:multi-storey )?car park|multi-storey|bridge|cliff))"
    # A bridge with its article: "at bridge tonight" is the card game.
    r"|(?:the |a |this |that )(?:bridge|ledge|roof|rooftop|overpass|(?:train |railway )?tracks|"
    r"railway line|cliff edge)|(?:train |railway )tracks)"
    r"(?:,? (?:right now|now|again|alone|by myself|on my own|at the moment|tonight))* *$"
)
# ...and what, said anywhere with it, makes it an outing, a view or a job on the roof.
_AN_OUTING: Final = (
    r"\b(?:photos?|photographs?|pictures?|pics|selfies?|sunset|sunrise|views?|scenery|"
    r"sightseeing|tour|tourists?|(?:on|for|out for|going for) a (?:walk|run|jog|ride|bike ride|"
    r"stroll)|walking the dog|jogging|cycling|fishing|traffic|commut\w*|on my way|"
    r"heading (?:home|to|back|out)|waiting for|the bus|(?:be|see you) (?:there|soon|in)|"
    r"almost there|nearly there|with (?:my |the )?(?:friends|mates|dog|kids)|beautiful|"
    r"gorgeous|lovely|stunning|fixing|"
    r"repair\w*|gutters?|tiles?|chimney|aerial|antenna|solar panels?|shingles|satellite dish|"
    r"concert|party|drinks|bbq|barbecue|picnic|fireworks|festival|holiday|vacation|trip|"
    r"ships?|captain|crew|dentist|dental|teeth|tooth|guitar|violin|nose|song|music)\b"
)

# A knife held, said with nothing that makes it a meal, a parcel or a craft: "I have a knife in
# my hand", "I'm holding a knife". A gun, razor or blade held is preparation (see below).
_KNIFE_IN_HAND: Final = (
    r"\b(?:knife|knives|scalpel|box cutter|stanley knife) (?:is |are )?in my hands?\b"
    r"|\b(?:holding (?:a|the|my) (?:\w+ )?(?:knife|scalpel)|(?:i have|i have got|i got) (?:a|the|"
    r"my) (?:\w+ )?(?:knife|scalpel) (?:right )?(?:here|with me|next to me|beside me))"
    r"(?= *(?:$|[,;]|(?:and|but|so|right now|now|again)\b))"
)
_A_MEAL_OR_A_CRAFT: Final = (
    r"\b(?:cook\w*|chop\w*|slic\w*|dic(?:e|ed|ing)|peel\w*|carv\w*|whittl\w*|sharpen\w*|"
    r"dinner|lunch|breakfast|meals?|recipe|prep(?:ping)?|onions?|garlic|vegetables?|veg|"
    r"carrots?|potato(?:es)?|meat|steak|chicken|fish|bread|butter|cheese|cake|fruit|apples?|"
    r"tomato(?:es)?|mangoe?s?|melons?|pineapples?|avocados?|oranges?|lemons?|limes?|pumpkins?|"
    r"will not cut|sandwich\w*|fork|chopping board|cutting board|butcher\w*|fillet\w*|"
    r"unbox\w*|parcels?|packages?|boxes|tape|cardboard|craft\w*|woodwork|sculpt\w*|camping|"
    r"juggl\w*|magic trick|shav\w*|hunting|gutting|knife skills|game|film|movie|play|"
    r"rehearsal|costume|halloween|careful|watch out|mind out|ribbon)\b"
)
# A blade held to the body: made ready. Not shaving, nor someone else's knife at one's throat.
_BLADE_TO_MY_BODY: Final = (
    r"\b(?:knife|blade|razor|razor blade|scalpel|shard of glass|broken glass) (?:is |was )?"
    r"(?:(?:held|pressed|right) )?(?:to|against|on) my (?:wrists?|throat|neck|arm|arms|skin|"
    r"veins?|chest)\b"
)
_SHAVED_OR_ATTACKED: Final = (
    r"\b(?:shav\w*|stubble|beard|mugged|mugg(?:ing|er|ers)|robbed|robber\w*|attacked|attackers?|"
    r"assault\w*|threaten\w*|held me|pulled a knife|knifepoint|intruder|burglar|thie(?:f|ves)|"
    r"stranger|gang|held up|stabbed me)\b"
)

# Gas let on ("I turned the gas on"): a means, nothing alone (it cooks), imminent with despair
# or ideation; with the room shut up or the gas left unlit, an act under way.
_GAS_ON: Final = (
    r"(?:\b(?:turned|switched|put|turning|switching) (?:on (?:all )?(?:of )?the gas\b|"
    r"(?:all )?(?:of )?the gas (?:(?:rings|taps|burners|hobs|jets|cooker|oven|hob) )?on\b)"
    r"|\bthe gas (?:is|has been) (?:on|running(?! (?:low|out|on empty))|hissing)\b)"
)
_ROOM_SHUT_UP: Final = (
    r"(?:\b(?:closed|shut|sealed|taped(?: up)?|blocked(?: up)?|stuffed towels under) "
    r"(?:up )?(?:all )?(?:of )?(?:the|my) (?:windows?|doors?|vents?|gaps?)"
    r"|\b(?:the )?(?:windows?|doors?) (?:are|is) (?:all )?(?:closed|shut|sealed|taped up)"
    r"|\bwithout lighting it|\b(?:did not|have not|will not|not going to) light it)\b"
)
# The gas let on and the room sealed, said in sentences of their own ("I turned the gas on. I
# closed the windows."): each in the speaker's own words ("I ..."), not a door shut behind one.
_I_LET_THE_GAS_ON: Final = (
    r"\bi (?:have |had |just |already |then |also )*(?:turned|switched|put|left) "
    r"(?:on (?:all )?(?:of )?the gas\b|(?:all )?(?:of )?the gas (?:(?:rings|taps|burners|hobs|"
    r"jets|cooker|oven|hob) )?on\b)|\bi am (?:turning|switching) (?:on the gas|the gas on)\b"
)
_I_SEALED_THE_ROOM: Final = (
    r"\bi (?:have |had |just |already |then |also )*(?:closed|shut|sealed|taped(?: up)?|"
    r"blocked(?: up)?) (?:up )?(?:all )?(?:of )?(?:the|my) (?:windows|vents)\b"
    r"|\bi (?:have |had |just |already |then |also )*(?:sealed|taped(?: up)?|blocked(?: up)?) "
    r"(?:up )?(?:all )?(?:of )?(?:the|my) (?:window|doors?|vent|gaps?)\b"
    r"|\bi (?:have |had |just |already |then |also )*(?:stuffed|put|pushed|rolled|laid) "
    r"(?:some |the |a |my )?(?:towels?|clothes|blankets?|sheets?) (?:under|along|around|against) "
    r"(?:the|my) (?:doors?|windows?|gaps?)\b"
    r"|\bi am (?:sealing|taping(?: up)?|blocking(?: up)?) (?:up )?(?:all )?(?:of )?(?:the|my) "
    r"(?:windows?|doors?|vents?|gaps?)\b"
    r"|\bi am (?:closing|shutting) (?:all )?(?:of )?(?:the|my) (?:windows|vents)\b"
    r"|\bwithout lighting it\b|\b(?:did not|have not|will not|not going to) light it\b"
)
# An everyday reason anywhere in what was said: the weather, a noise, a meal, another day.
_AN_EVERYDAY_REASON: Final = (
    r"\b(?:rain\w*|cold|chilly|freezing|wind(?:y|s)?|draughts?|drafts?|nois\w*|music|"
    r"neighbou?rs?|bugs|mosquito\w*|flies|wasps?|smoke|pollen|storm\w*|snow\w*|dust|smell\w*|"
    r"insulat\w*|yesterday|last (?:night|week|month|year|winter|summer|autumn|spring|time)|"
    r"ago|every (?:day|night|morning|evening))\b"
)
_A_GAS_COOKER_IN_USE: Final = (
    r"\b(?:cook\w*|boil\w*|kettle|dinner|lunch|breakfast|tea|coffee|meals?|food|pasta|soup|"
    r"eggs?|fry\w*|heating|heater|warm(?: up|ing|th)?|bbq|barbecue|grill\w*|boiler|"
    r"radiators?|hot water|shower|bath|pilot light|engineer|meter|bill|supply|mains|camping|"
    r"stew|roast\w*|simmer\w*|toast|recipe|bak(?:e|ed|ing)|accident\w*|by mistake|forgot)\b"
)

# The rest of a stock of medicine, taken at once: "I've taken half and I'm going to take the
# rest". Not the rest of the day off, a course finished, or a dose later on.
_NOT_THE_REST_NOW: Final = (
    rf"(?!{_TAKEN_SOMEWHERE}| (?:tomorrow|later|over|as|every|each|before|after|when|once|if|"
    r"at|in the morning|this (?:morning|evening|afternoon|week|month)|on|during|until|till|"
    r"for (?:the|my|a) (?:pain|headache|week|month|course|cold|flu))\b)"
)

# A dose set out to be taken as prescribed: pills in front of one are not then a stockpile.
_A_DOSE_AS_PRESCRIBED: Final = (
    r"\b(?:(?:need|have|got|supposed|forgot|remember|remind me) to take|so i remember|"
    r"every (?:morning|night|day|evening)|for the week|with (?:food|breakfast|lunch|dinner)|"
    r"(?:after|before) (?:breakfast|lunch|dinner|bed)|pill (?:organi[sz]er|box)|dosette|"
    r"vitamins?)\b"
)

# Letters that are a goodbye by whom they are for ("I've written letters to my family"), not a
# birthday, a holiday, a job or a therapy exercise.
_EVERYDAY_LETTERS: Final = (
    r"\b(?:birthdays?|christmas|xmas|holidays?|thank[- ]you|postcards?|newsletter|cover letter|"
    r"applications?|job|camp|prison|abroad|overseas|travell?ing|deployed|deployment|army|"
    r"pen ?pals?|santa|wedding|invitations?|cards?|when they (?:are|grow|get|turn)|for when "
    r"they|every (?:week|month|year)|each (?:week|month|year)|school|homework|therapist|"
    r"therapy|exercise|gratitude|time capsule|memory box|in memory|update|lunch\w*|"
    r"reminders?|chores|fridge)\b"
)

# Dying spoken of, with which "I'm ready to go" is a readiness to die, not to leave the house.
_DYING_SPOKEN_OF: Final = (
    r"\b(?:made (?:my )?peace|at peace|my time (?:has come|is up|is here)|it is my time|"
    r"(?:said|saying) (?:all )?(?:of )?my goodbyes|this is goodbye|goodbye (?:everyone|forever|"
    r"world)|(?:cannot|can not|do not want to) (?:fight|keep fighting)|done fighting|"
    r"tired of fighting|no more (?:pain|fighting|suffering)|let me go(?= *(?:$|[,;]|now|please)\b)"
    r"|leave this (?:world|earth|life)|to die|be dead|my death|death (?:is|would be)|heaven|"
    r"the other side|"
    r"do not want to be here|want (?:it|this|everything|it all) to (?:be over|end|stop)|"
    r"had enough(?= *(?:$|[,;]|and|but|so|now)\b)|cannot (?:do this|take (?:it|this)|go on|"
    r"keep going)|not (?:be|being) here (?:anymore|any more|tomorrow)|ending it|over for me)\b"
)

# A way of doing it thought through ("I've thought about how I'd do it"): said of a job, a
# room done up or a plan for work it is not.
_A_JOB_TO_DO: Final = (
    r"\b(?:work|job|project|boss|manager|team|client|presentation|speech|essay|exam|interview|"
    r"paint\w*|renovat\w*|decorat\w*|kitchen|garden|diy|build\w*|fix\w*|repair\w*|"
    r"install\w*|recipe|cake|wedding|proposal|propos\w*|party|trip|holiday|moving|budget|"
    r"design\w*|business|tattoo|haircut|hair|shelves|homework|assignment|course|marathon|race|"
    r"test|differently|better|instead|hire\w*|contractor|builder|plumber|electrician|"
    r"professional|story|book|novel|chapter|film|script|game|episode|song|poem|season)\b"
)

# Words left for those who remain ("tell them I loved them", "tell my mum I'm sorry"), said as
# a request, not told of ("I always tell my kids I love them").
_TELL_THEM: Final = (
    rf"(?:^ *|, *|\b(?:please|just|and|goodbye|bye|so) )tell (?:them|everyone|everybody|"
    rf"all of them|(?:my )?(?:\w+ )?(?:{_KIN}|kids|children|loved ones)(?: and (?:my )?(?:\w+ )?"
    rf"(?:{_KIN}|kids|children))?) (?:that )?i "
)
_THOSE_LOVED: Final = (
    r"(?:them|her|him|you|everyone|everybody|all of (?:you|them)|you all|them all|"
    r"each of (?:you|them))\b"
)
# ...and what makes them a message for later, not a farewell.
_SEE_THEM_SOON: Final = (
    r"\b(?:see (?:them|you|her|him|everyone) (?:soon|later|tomorrow|at|on|next)|see you|"
    r"when you see|next (?:week|time|month|term)|at christmas|be (?:home|back|late)|"
    r"running late|on my way|birthday|party|going to bed|off to bed|good ?night|"
    r"talk (?:to you )?(?:tomorrow|later|soon|next)|battery|signal|credit|free (?:trial|"
    r"messages)|for now|for today|good luck|nervous|exam|interview|congrat\w*|proud of|"
    r"at (?:work|school)|busy|gets? (?:home|back)|wakes? up)\b"
)

# Hitting one's own head, and the surfaces that make it self-harm rather than a bump.
_HIT_MY_HEAD: Final = (
    r"(?:hit|hits|hitting|bang|bangs|banged|banging|smash|smashed|smashing) my head"
)
_WALL_OR_FLOOR: Final = r"(?:the |a |my )?(?:walls?|floor|ground)\b"

# What an overdose is taken of: medicines by kind and by common name.
_MEDICINE: Final = (
    r"(?:pills?|tablets?|capsules?|caplets?|meds|medications?|medicines?|pain ?killers?|"
    r"paracetamol|acetaminophen|tylenol|panadol|ibuprofen|advil|nurofen|motrin|aspirin|"
    r"codeine|co-codamol|tramadol|oxycodone|oxycontin|oxys?|opioids?|morphine|fentanyl|"
    r"xanax|valium|diazepam|lorazepam|ativan|klonopin|clonazepam|benzos?|ambien|zolpidem|"
    r"zopiclone|benadryl|diphenhydramine|nytol|antidepressants?|sertraline|zoloft|prozac|"
    r"fluoxetine|citalopram|escitalopram|lexapro|amitriptyline|mirtazapine|lithium|seroquel|"
    r"quetiapine|insulin|antihistamines?|gabapentin|pregabalin|lyrica|sleep(?:ing)? aids?)"
)
# The whole stock of a medicine taken, wanted or thought of ("taking all my pills"); not all
# of today's doses ("take all my pills with food") nor pills carried somewhere.
_ALL_MY_MEDICINE: Final = (
    rf"tak(?:e|ing) (?:all (?:of )?(?:my|the|these|those) (?:\w+ )?|the whole (?:bottle|box|pack|packet) "
    rf"of (?:my |the )?){_MEDICINE}\b(?!{_TAKEN_SOMEWHERE}| (?:before|after|every|each|on time|"
    r"properly|today|this morning|in the morning|at night)\b)"
)
# A dose's unit or a stretch of time after a number: "20 mg of my antidepressant", "30 minutes".
_UNIT: Final = (
    r"(?:mg|mcg|milligrams?|micrograms?|ml|millilitres?|milliliters?|g|grams?|units?|iu|doses?|"
    r"seconds?|minutes?|mins?|hours?|days?|weeks?|months?|years?|times?)"
)
# A medicine after a quantity: "20 sleeping pills", "all of my meds", "too many of the tablets".
_OF_MEDICINE: Final = (
    rf"(?:of )?(?:(?:my|the|her|his|their|those|these|mum's|mom's|dad's) )?"
    rf"(?:(?!{_UNIT}\b)[\w'-]+ ){{0,2}}?{_MEDICINE}\b"
)
# ...or the ones already spoken of ("I took 30 of them"), not people taken somewhere.
_OF_THEM: Final = rf"of (?:them|those|these)\b(?!{_TAKEN_SOMEWHERE})"
# Ten or more, in figures or words, perhaps roughly ("like 25", "about forty").
_TEN_OR_MORE: Final = (
    r"(?:(?:over|about|around|like|at least|maybe|nearly|almost|more than|roughly) )?"
    r"(?:[1-9]\d+|(?:ten|eleven|twelve|(?:thir|four|fif|six|seven|eigh|nine)teen|twenty|"
    r"thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ](?:one|two|three|four|five|six|"
    r"seven|eight|nine))?|a hundred|hundreds|a dozen|dozens|a couple of dozen)"
)
_LOTS: Final = (
    r"(?:a lot|lots|loads|a load|heaps|a ton|tons|a bunch|a handful|handfuls|a fistful|"
    r"fistfuls|a pile|so many)"
)
_TOO_MANY: Final = r"(?:(?:way|far|much|so|a few|a lot|a couple|a bit) )?too (?:many|much)"
_CONTAINER: Final = (
    r"(?:(?:a|an|the|one|two|three|\d+) )?(?:whole |full |entire )?(?:bottles?|box|boxes|"
    r"packs?|packets?|jars?|tubs?|strips?|sheets?|blister packs?|blisters?|(?:a |one )?"
    r"(?:month|week)'?s? (?:worth|supply))"
)
# Drinks and groceries come in bottles too: "a bottle of water", "a bottle of red".
# Drink that makes pills taken with it an overdose told: alcohol, not water or tea.
_ALCOHOL: Final = (
    r"(?:vodka|whisky|whiskey|gin|rum|tequila|brandy|wine|beer|cider|spirits|liquor|booze|"
    r"alcohol|champagne|prosecco|sake)"
)
_DRINK: Final = (
    r"(?:water|wine|red|white|rose|beer|ale|lager|cider|juice|milk|soda|pop|coke|cola|"
    r"lemonade|squash|champagne|prosecco|bubbly|vodka|whisky|whiskey|gin|rum|tequila|brandy|"
    r"sake|spirits|liquor|coffee|tea|kombucha|sauce|ketchup|shampoo|lotion|perfume|oil|"
    r"sunscreen|sun cream)"
)
_CLAUSE_END: Final = r"(?= *(?:$|[,;]|(?:and|but|so|because|then)\b))"
# Poisons drunk or swallowed ("I drank bleach", "I swallowed drain cleaner").
_POISON: Final = (
    r"(?:bleach|anti-?freeze|drain (?:cleaner|unblocker)|weed ?killer|rat poison|poison|"
    r"pesticides?|insecticides?|herbicides?|paraquat|lighter fluid|methanol|lye|caustic soda|"
    r"cleaning (?:fluid|products?|solution|spray)|toilet cleaner|oven cleaner|disinfectant|"
    r"dettol|lysol|screenwash|windscreen wash|windshield (?:washer )?fluid|brake fluid|petrol|"
    r"gasoline|kerosene|paraffin|paint thinners?|white spirit|turpentine|ammonia|"
    r"hand saniti[sz]er|rubbing alcohol|detergent|laundry (?:pods|detergent)|cyanide|arsenic)"
)

# Safe as the speaker is with themself ("not safe with myself", "...to be alone"), then the end
# of the clause or a time: not safe somewhere, from someone or doing something ("I don't feel
# safe walking home at night", "not safe to drive", "not safe at home").
_WITH_MYSELF: Final = (
    r"(?: (?:with|from|around) myself| alone| by myself| on my own| being (?:alone|by myself|"
    r"on my own)| to be (?:left )?(?:alone|by myself|on my own))"
)
_SAFE_END: Final = (
    r"(?= *(?:$|[,;]|(?:and(?! (?:sound|secure)\b)|but|so|because|anymore|any more|right now|"
    r"now(?! that)|tonight|today|tomorrow|at the moment|at all|honestly|"
    r"this (?:evening|weekend|afternoon))\b))"
)
# The night ahead, doubted to be lived through: "I'm not going to make it through tonight", "I
# don't think I'll survive the night". Not making it to an event ("...to the meeting tonight"),
# not an exam survived, not "tonight's dinner", not the night shift; and "I won't make it
# tonight" is an apology for not coming.
_DOUBT_I_WILL: Final = (
    r"\bi (?:am not going to|will not|would not|might not|may not|cannot|could not|"
    r"(?:do not think|doubt)(?: that)? i (?:will|would|can|am going to)|(?:do not know|am not sure)"
    r"(?: if| whether| that)? i (?:will|would|can|am going to)) "
)
_THE_NIGHT_AHEAD: Final = (
    r"(?:(?:make it|get|live) (?:through|past) (?:tonight|the night|another (?:night|day))"
    r"|make it (?:to|till|until) (?:the )?morning"
    r"|get through (?:tonight|the night|another (?:night|day))"
    r"|(?:survive|last) (?:tonight|the night|another (?:night|day)|(?:till|until) (?:the )?morning)"
    r"|see (?:the )?(?:morning|tomorrow))"
    r"(?= *(?:$|[,;]|(?:and|but|so|because|if|honestly|alive|like this|on my own|alone|"
    r"by myself)\b))"
)

_RULES: Final = [
    # Third parties: someone else's self-harm, recorded so "I feel the same" can refer to it.
    _rule(
        "third_party",
        r"\b(?:kill|killed|killing|kills|hurt|hurting|hurts|harm|harming|harms|cut|cutting|"
        r"cuts|burn|burning|burns)(?: \w+)? (?:himself|herself|themselves|themself)\b"
        r"|\b(?:end|ended|ending|ends|take|took|taken|taking|takes) (?:his|her|their) "
        r"(?:own )?life\b",
        negatable=False,
    ),
    # Acts under way, and acts announced with their method: imminent on their own.
    # An overdose: ten or more, a lot, too many, all of them, a whole bottle or packet, of a
    # medicine ("I took 30 pills", "I've taken way too many", "an entire bottle of tylenol");
    # a poison drunk or swallowed ("I just drank bleach"). Told of a remote past ("when I was
    # 15") it is a past attempt; see _told_of_a_remote_past.
    _rule(
        "act_in_progress",
        r"\bi (?:have |had )?(?:just |already |now )?(?:took|taken|swallowed|downed|popped|"
        r"ingested) (?:(?:like|about|maybe|literally|basically|pretty much|almost|nearly) )?(?:"
        # Everything there was: "I took everything in the medicine cabinet".
        # Not what was taken out of it ("...everything in the cabinet out and cleaned it").
        r"everything in the (?:medicine |bathroom |first aid )?(?:cabinet|cupboard|box|drawer)\b"
        r"(?! (?:out|off|down|apart|to|away)\b)"
        r"|every (?:pill|tablet) (?:in the house|i (?:had|have|could find))\b"
        rf"|(?:{_TEN_OR_MORE}|{_LOTS}|{_TOO_MANY}|all|{_CONTAINER}) (?:{_OF_MEDICINE}|{_OF_THEM})"
        rf"|{_TOO_MANY}{_CLAUSE_END}"
        rf"|(?:them|those|these) all{_CLAUSE_END}"
        rf"|(?:a|an|the|one) (?:whole |full |entire )?bottle of (?!(?:\w+ )?{_DRINK}\b)"
        rf"|(?:the|a|an) (?:whole|entire|full) (?:bottle|box|pack|packet|jar|tub|strip)"
        rf"{_CLAUSE_END}"
        r"|an? (?:overdose|od)\b)"
        r"|\bi (?:have |had )?(?:just |already )?overdosed\b"
        # All of them with drink: "I've had a bottle of vodka and all my pills".
        r"|\bi (?:have |had |just |already )*(?:had|drank|downed) (?:(?:a|the) (?:whole |full )?"
        rf"(?:bottle|pint|glass|can)s? of )?(?:\w+ )?{_ALCOHOL} and all {_OF_MEDICINE}"
        r"|\bi (?:have |had |just |already )*had all (?:of )?my "
        rf"{_MEDICINE} with (?:(?:a bottle of |some )?{_ALCOHOL}|a drink)\b"
        r"|\bi (?:have |had )?(?:just |already |now )?(?:drank|drunk|swallowed|downed|ingested|"
        r"chugged|ate|eaten) (?:(?:some|a (?:\w+ )?(?:bottle|cup|glass|mug|mouthful|capful|can|"
        r"jug|bit|lot|load)|a lot|half (?:a|the) (?:bottle|cup|glass)) of )?"
        rf"(?:(?:some|the|my|this|that) )?{_POISON}\b",
        negatable=False,
    ),
    # A self-harm wound past what was meant ("I cut too deep"), and exhaust fumes in a closed
    # garage: under way, in the speaker's own voice.
    _rule(
        "act_in_progress",
        r"\bi (?:have |had |just |think i )*cut (?:myself )?(?:way |far |much )?too deep\b"
        r"|\b(?:in|inside) the car (?:in the garage )?with the engine (?:running|on)\b"
        r"|\bengine (?:is |was )?(?:running|on) in the (?:closed |shut |locked )?garage\b"
        # Not a car warmed up or defrosted there.
        r"(?!.*\b(?:warm(?:ing|ed)? (?:it |the car |her |him )?up|defrost(?:ing)?|heat(?:ing)? up)\b)"
        r"|\bhose(?:pipe)? (?:to|on|in|into|from|attached to) the exhaust\b",
        negatable=False,
        own_subject=True,
    ),
    # Gas let into a room shut up, or left unlit: "I turned the gas on and closed the windows".
    # Not a hob lit to cook nor the heating put on.
    _rule(
        "act_in_progress",
        rf"{_GAS_ON}[^.;]{{0,40}}?{_ROOM_SHUT_UP}|{_ROOM_SHUT_UP}[^.;]{{0,40}}?{_GAS_ON}",
        negatable=False,
        own_subject=True,
        unless=_A_GAS_COOKER_IN_USE,
    ),
    # ...taking it now: "I'm taking the rest of the pills".
    _rule(
        "act_with_method",
        r"\bi am (?:just )?(?:taking|swallowing) the rest of (?:the (?:bottle|box|pack|packet|"
        rf"strip)\b|(?:my |the |those |these )?(?:\w+ )?{_MEDICINE}\b){_NOT_THE_REST_NOW}",
        own_subject=True,
    ),
    _rule(
        "act_with_method",
        r"\b(?:going to|about to|will|decided to) (?:jump(?: off| from| in front)\b|jump *$|"
        r"jump(?= *(?:now|tonight|today)\b)|drive (?:my car )?(?:into|off)\b|overdose\b|"
        rf"{_TAKE_ALL}|take (?:all (?:of )?(?:my|the|"
        r"these|those) (?:pills|tablets)\b|the whole bottle\b)|hang myself\b|shoot myself\b|"
        r"drown myself\b|cut (?:deep|deeper|my wrists?)\b|slit my wrists?\b"
        # An overdose or a poison, as the acts under way below tell them ("take 30 pills").
        rf"|(?:take|swallow) (?:{_TEN_OR_MORE}|{_LOTS}|{_TOO_MANY}) (?:{_OF_MEDICINE}|{_OF_THEM})"
        rf"|swallow (?:all (?:of )?(?:my|the|these|those) {_MEDICINE}\b|them all\b|all of them\b)"
        # The rest of a medicine: "I'm going to take the rest of the pills".
        r"|(?:take|swallow) the rest of (?:the (?:bottle|box|pack|packet|strip)\b|(?:my |the |"
        rf"those |these )?(?:\w+ )?{_MEDICINE}\b){_NOT_THE_REST_NOW}"
        rf"|(?:drink|swallow) (?:some |the |a (?:\w+ )?(?:bottle|glass|cup) of )?{_POISON}\b)",
        own_subject=True,
    ),
    # ...and the rest said bare, with a medicine spoken of: "I've had half the bottle of pills and
    # I'm going to take the rest". Without one it is the rest of anything ("...the rest home").
    _rule(
        "act_with_method",
        r"\b(?:going to|about to|will|decided to) (?:just )?(?:take|swallow) the rest"
        r"(?: of (?:them|those|these|it))?(?= *(?:$|[,;]|(?:now|too|as well|and|but|so)\b))"
        r"|\bi am (?:just )?(?:taking|swallowing) the rest(?: of (?:them|those|these|it))?"
        r"(?= *(?:$|[,;]|(?:now|too|as well|and|but|so)\b))",
        own_subject=True,
        needs=rf"\b(?:{_MEDICINE}|overdos\w*|od)\b",
    ),
    # Ideation in the user's own voice.
    _rule(
        "suicidal_intent",
        r"\b(?:going to|about to|will|decided to|plan to|planning to|i am) "
        r"(?:kill myself|end my (?:own )?life|end it all|take my (?:own )?life|"
        rf"ending it(?! with| between)|end it(?! with| between| all)|{_END_THINGS})\b",
        own_subject=True,
    ),
    _rule(
        "past_attempt",
        r"\b(?:tried|attempted) to (?:kill myself|end my (?:own )?life|take my (?:own )?life)\b"
        r"|\b(?:attempted|tried) suicide\b|\bsuicide attempt\b",
        own_subject=True,
    ),
    _rule(
        "ideation",
        r"\b(?:kill|killing|killed|kills) myself\b"
        r"|\b(?:end|ending|ended|take|taking|took) my (?:own )?life\b"
        r"|\bend(?:ing)? (?:it|things) all\b|\bend(?:ing)? it all\b"
        r"|\b(?:use|using) (?:it|that|them|a gun|the gun|a knife|the knife|the pills) on myself\b"
        r"|\b(?:shoot|shooting|hang|hanging|drown|drowning|poison|poisoning) myself\b"
        r"|\bways to (?:die|kill myself|end my life)\b"
        r"|\b(?:so i can|want to|going to) overdose\b"
        r"|(?<![\d.] )(?<![\d.])\bkms\b",  # texting's "kill myself"; not kilometres
    ),
    _rule(
        "ideation",
        r"\bsuicidal\b|\b(?:think|thinking|thought|thoughts) (?:about|of) (?:suicide|"
        r"not being here|not existing|ending things|ending it all)\b"
        r"|\b(?:consider|considering|contemplate|contemplating|commit|committing) suicide\b"
        r"|\bsuicide (?:is|seems|feels|looks|sounds)(?: like)? (?:the only|an option|my only)\b"
        r"|\b(?:death|dying) (?:is|seems|feels|looks|sounds)(?: like)? (?:the|my) only "
        r"(?:way out|option|answer|solution|choice|escape|way to (?:stop|end|escape))\b"
        # ...said the other way round: "the only way out is to die".
        r"|\b(?:the|my) only (?:way out|option|answer|solution|choice|escape)(?: left)? "
        r"(?:is|would be|seems|feels like) (?:to die|death|dying|suicide)\b"
        r"|\bsuicide (?:is|has been|was|keeps) (?:\w+ )?(?:on|in|crossing) my mind\b"
        r"|\b(?:want|wants|wanted|wanting) to die\b|\bready to die\b"
        r"|\b(?:should|deserve to) (?:just )?die\b"
        rf"|\b(?:want|wants|wanted|wanting) to (?:{_JUMP})\b"
        rf"|\b(?:think|thinking|thought|thoughts) (?:about|of) (?:{_JUMP}|overdosing)\b"
        rf"|\b(?:want|wants|wanted|wanting) to {_ALL_MY_MEDICINE}"
        rf"|\b(?:think|thinking|thought|thoughts) (?:about|of) {_ALL_MY_MEDICINE}",
        own_subject=True,
    ),
    # A way of doing it thought through, said bare: "I've thought about how I'd do it". Not a
    # job, a room done up or a plan for work ("...how I'd do it differently").
    _rule(
        "ideation",
        r"\b(?:think|thinking|thought|thoughts|picture|pictured|picturing|imagine|imagined|"
        r"imagining) (?:about |of )?(?:how|the way|ways) i (?:would|could|will|might|should|"
        r"am going to) (?:do it|end it|go)"
        r"(?= *(?:$|[,;]|(?:and|but|so|honestly|before|already|sometimes|a lot|too|lately|"
        r"recently|again)\b))",
        own_subject=True,
        unless=_A_JOB_TO_DO,
    ),
    # Ready to go, said bare with dying spoken of ("I'm ready to go, I've made my peace"); not
    # ready to go to the shop, nor ready to go with nothing said of dying.
    _rule(
        "passive_ideation",
        r"\b(?:i am|i feel|i am feeling) (?:(?:so|just|really|finally|completely|truly|totally) )?"
        r"ready to go(?: now)?(?= *(?:$|[,;]|(?:and|but|so|because|honestly)\b))",
        needs=_DYING_SPOKEN_OF,
        unless=r"\b(?:quit\w*|job|move|moving|trip|holiday|flight|party|taxi|uber|car|bag|coat|"
        r"keys|shoes|packed|school|shop\w*|meeting|shift|interview)\b",
    ),
    _rule(
        "passive_ideation",
        r"\bwish (?:that )?i (?:was|were|had been) dead\b"
        r"|\bwish i (?:was|were|had|would|would have) never (?:been |have been )?born\b"
        r"|\b(?:hope|wish) (?:that )?i (?:do not|did not|had not|never|will not|would not) "
        r"wake up\b"
        r"(?! (?:late|early|at|before|the|in time|so|too|with|to|on|hungover|sick|tired|my|"
        r"anyone|everyone|him|her|them|you|the baby|the kids)\b)"
        r"|\bwish i could (?:just )?die\b|\b(?:want|wish) to be dead\b|\bbetter off dead\b"
        r"|\b(?:want|wish|wanting) to not wake up\b"
        # "I hope I die in my sleep"; not dying laughing, old or rich.
        r"|\b(?:hope|wish) (?:that )?i (?:would |will |could |just )*die\b(?! (?:laughing|of|"
        r"from|happy|old|rich|before i (?:get old|see)))"
        r"|\brather be dead\b(?! than)"
        # Reunited with the dead: "I want to be with grandma in heaven".
        r"|\b(?:want|wish|ready|going) to (?:go )?(?:be with|join|see) (?:my )?(?:late )?"
        rf"{_KIN}(?: again)?,? (?:in heaven|up there|on the other side)\b"
        r"|\bwish (?:that )?i (?:was|were) not (?:alive|here|around|born)\b"
        r"|\bfeel(?:ing)? like dying\b"
        r"|\b(?:want|wish) to (?:stop existing|stop living|stop being alive|not exist|"
        r"not be alive|not be here anymore|cease to exist|no longer exist|no longer be alive)\b"
        r"|\b(?:go|going|fall|falling) to sleep (?:and|then) (?:never|not) wake up\b"
        r"|\b(?:hope|wish|want)\b[^.;]*\bnever wake up\b"
        r"|\b(?:want|wish|hope) (?:someone|somebody|something|a car|a bus|god) "
        r"(?:would |to |will )?(?:just )?(?:kill|hit) me\b"
        r"|\bwish i (?:would|could) (?:get|be) (?:hit|run over)\b"
        r"|\b(?:want|wish|wanting|hope) (?:i could |to )?(?:just )?(?:go to )?sleep forever\b"
        r"|\bi am (?:so |just |really )?(?:done|finished) with (?:life|living|being alive)\b"
        r"(?! (?:in|at|with|on|near|there|here|together|abroad|alone|by)\b)",
    ),
    # Weary of living: the user's own, and a "not" in front takes it back.
    _rule(
        "passive_ideation",
        r"\b(?:tired|sick) of (?:living|being alive|life)\b"
        r"|\b(?:had|have had) enough of (?:living|being alive|life)\b",
        own_subject=True,
    ),
    # Statements whose "not" is the ideation itself ("I don't want to live").
    _rule(
        "passive_ideation",
        r"\b(?:do|does) not (?:really )?(?:think i )?(?:want|wish) to (?:live|be alive|exist|"
        r"be here anymore|be here any more|be around anymore|keep living|go on living|"
        r"be in this world)\b(?! forever| like this| with| in| there)"
        r"|\b(?:do|does) not (?:really )?want to wake up\b(?! early| at| before| so early| for)"
        r"|\bnot wanting to (?:live|be alive|exist|be here)\b"
        # Unsure of wanting to live at all, not of living somewhere or going on a trip.
        r"|\b(?:not sure|do not know|unsure|wonder|wondering) (?:if |whether |that )?i "
        r"(?:still |even |really )?(?:want|wish) to (?:live|be alive|be here|keep going|go on|"
        r"keep living|stay alive)\b(?! (?:in|with|there|here|at|on|near|abroad|together|alone|"
        r"by|a|an|the|to|for|holiday|vacation|dates?|trips?)\b)"
        r"|\bno (?:reason|point) (?:in|for) me (?:being alive|living|existing|staying alive|"
        r"going on|to live|to be alive|to go on)\b"
        r"|\bno (?:reason|point) (?:for me )?(?:to|in) (?:live|living|be alive|being alive|go on|"
        r"going on|stay alive|staying alive|exist|existing)\b"
        r"|\b(?:life is not|not) worth living\b|\blife is not worth it\b"
        # Asked, not said: "what's the point of living"; not the point of life, a philosophy.
        r"|\bwhat is (?:even )?the point (?:of|in) (?:me )?(?:living|being alive|going on|"
        r"staying alive|existing|me being here)\b"
        # Not the point of living somewhere ("...of living in London if you never go out").
        # "...of living in this world" or "in pain" is despair still.
        r"(?! (?:near|at|by|there|here|abroad)\b"
        r"| in (?!this (?:world|life|body)\b|pain\b|misery\b|agony\b|fear\b))"
        r"|\bno (?:reason|point) (?:in|for) me being (?:here|around)"
        r"(?= *(?:$|[,;]|anymore|any more|at all|and|but|so)\b)"
        r"|\b(?:do not|does not|cannot|can not|could not) (?:really |even |honestly |just )?"
        r"see (?:the|any|a|much) (?:point|reason) "
        r"(?:in|of|to|for) (?:me )?(?:live|living|be alive|being alive|life|go on|going on|"
        r"keep living|keep going|stay alive|staying alive|exist|existing)\b"
        r"|\b(?:do|does) not feel like (?:living|being alive|being here) (?:anymore|any more)\b",
        negatable=False,
        own_subject=True,
    ),
    _rule(
        "indirect_ideation",
        # Better without me in the world, not without me at an event or a place ("is it
        # better without me there?", "better without me at the party"). "Better off without
        # me" is about lives, wherever it is said.
        r"\bbetter off without me\b|\b(?:better|happier|easier) without me\b"
        r"(?! (?:there\b|at\b(?! all\b)))"
        r"|\b(?:better|easier|happier) (?:off )?(?:for (?:everyone|everybody|them) )?if i "
        r"(?:was|were|am) (?:not here|not around|gone|dead|never born)\b"
        r"|\bbetter off not (?:existing|being here|being alive|being around)\b"
        r"|\b(?:better|easier) (?:off )?if i (?:just )?did not exist\b|\bwish i did not exist\b"
        r"|\b(?:no one|nobody|no-one) would (?:even )?(?:notice|care|miss me)\b[^.;]*\bif i "
        r"(?:was|were|died|disappeared|was gone|were gone)\b",
        negatable=False,
    ),
    # Not safe, said of oneself: a disclosure of risk to self, as a clinician hears it ("I'm not
    # safe", "I can't promise I'll be safe tonight", "I can't keep myself safe"). Its "not" is
    # the statement itself. Not feeling safe, bare, may be fear of something else: see distress.
    _rule(
        "unsafe",
        rf"\bi am (?:not|no longer) safe{_WITH_MYSELF}?{_SAFE_END}"
        rf"|\bi (?:do not|no longer|never|am not) feel(?:ing)? safe{_WITH_MYSELF}{_SAFE_END}"
        r"|\bi (?:do not|no longer|never|am not) feel(?:ing)? safe (?:with|from|around) myself\b"
        r"|\bi (?:(?:do not think|am not sure|do not know)(?: if| whether| that)?|doubt(?: that)?) "
        rf"i (?:am|will be|would be|can be|can stay) safe{_WITH_MYSELF}?{_SAFE_END}"
        r"|\bi (?:will not|might not|may not|would not) (?:be|stay|feel) safe"
        rf"{_WITH_MYSELF}?{_SAFE_END}"
        r"|\bi (?:cannot|can not|could not|will not) (?:promise|guarantee|say)(?: you)?(?: that)? "
        r"i (?:will|would|can|am going to) (?:be|stay|keep myself) safe\b"
        r"|\b(?:cannot|can not|could not|do not know how to|not sure i can|do not think i can|"
        r"do not know if i can) (?:keep|stay) (?:myself )?safe\b(?! (?:from|on|in|at|with)\b)"
        # Not trusting oneself alone or now, not "with money" or "to drive", nor bare.
        rf"|\bi do not trust myself(?:{_WITH_MYSELF}| to (?:stay|keep myself|be) safe)?"
        r"(?: (?:right now|tonight|now|at the moment))?(?= *(?:$|[,;]|(?:and|but|so|because)\b))"
        r"(?<!myself)",
        negatable=False,
        own_subject=True,
    ),
    _rule(
        "self_harm",
        r"\b(?:cut|cutting|cuts|burn|burned|burnt|burning|hurt|hurting|harm|harming|hit|"
        r"hitting|punch|punching|scratch|scratching|injure|injuring|starve|starving|bruise|"
        r"bruising) myself\b"
        r"|\bselfharm(?:ed|ing|s)?\b"
        r"|\b(?:cut|cutting|slit|slash|slashing|burn|burned|burnt|burning) my (?:wrists?|arms?|"
        r"legs?|thighs?|skin|stomach|hands?)\b"
        r"|\b(?:cutting|cut) again\b|\b(?:want|wants|urge) to cut\b"
        # "I have been cutting" said with nothing cut: back, down, onions, class are objects.
        r"|\b(?:have been|been|started|keep|kept|still|back to) cutting"
        r"(?= *(?:,|$)| (?:lately|recently|for (?:a while|weeks|months|years)|every (?:day|night)|"
        r"and(?! (?:pasting|gluing|sticking|sewing))|but|because|again)\b)"
        # A head hit against a wall or the floor, hit again and again, or hit on purpose.
        # Knocked on a cupboard, a shelf or a door frame ("I hit my head on the cupboard") it
        # is an accident, and so it is after "slipped and", or with "accidentally" in its clause.
        rf"|\b(?<!slipped and )(?<!fell and )(?<!tripped and ){_HIT_MY_HEAD} (?:against|into) "
        rf"{_WALL_OR_FLOOR}"
        r"|\b(?:keep|keeps|kept|been|started|start|still|always|want to|wanted to|urge to|"
        rf"feel like|felt like) (?:hitting|banging|hit|bang) my head\b(?= *(?:$|,)| (?:on|"
        rf"against|into) {_WALL_OR_FLOOR}| (?:again|until)\b)"
        rf"|\b(?:on purpose|deliberately|intentionally|purposely) {_HIT_MY_HEAD}"
        rf"|\b{_HIT_MY_HEAD}\b[^.;]{{0,40}}?\b(?:on purpose|deliberately|intentionally|"
        r"to (?:punish|hurt) myself|as hard as i could)\b",
    ),
    # Until it bleeds, not an itch scratched ("my bites", "my eczema", "mosquito bites, I
    # scratched them until they bled").
    _rule(
        "self_harm",
        r"(?<!bites )(?<!bite )(?<!eczema )(?<!rash )(?<!itch )(?<!spots )(?<!scab )"
        r"\b(?:until|till|til) (?:it|i|they|my (?!bites?\b|eczema\b|rash\b|scabs?\b|spots?\b)\w+)"
        r" (?:bleeds?|bled)\b",
        unless=r"\b(?:bites?|bitten|mosquito(?:es|s)?|mozzies?|midges?|gnats?|fleas?|insects?|"
        r"bugs?|eczema|rash|hives|chicken ?pox|psoriasis|sunburn|poison ivy|nettles?|stings?|"
        r"spots|scabs?|allergic|allergy|(?<!not )(?<!not even )itchy|"
        # A pet that scratched, not a pet spoken of ("...because my dog died").
        r"(?:dog|cat|puppy|kitten|pet) (?:scratched|bit|clawed|nipped)|"
        r"brush\w*|gums?|floss\w*|teeth|nose|nosebleeds?)\b",
    ),
    # "sh", texting's self-harm: after a verb that makes it so, or "sh'd". Not when said to
    # stand for another word ("I did sh today, I mean shopping").
    _rule(
        "self_harm",
        r"\b(?:relapsed|relapse|relapsing|doing|did|do|done|urges? to|want to|wanted to|"
        r"been|clean from|stopped|started|back to) (?:with |on |into )?sh\b(?!')|\bsh'?d\b",
        unless=r"\b(?:i mean|i meant|meaning|as in|short for|stands for|sh means|sh is)\b,? "
        r"(?:(?:the|a|some|my|going|doing|grocery|food|clothes|night|day|early|late) )*"
        # The word it stood for, not the next sentence's "she" or "should".
        r"sh(?!e\b|e is\b|ould|all\b|ut\b)\w+"
        r"|\bsh(?!e\b|ould|all\b|ut\b)\w+,? (?:i mean|i meant)\b",
    ),
    # What turns ideation into imminent risk. Denied, as the answer to "do you have a plan?"
    # ("No, I don't have a plan", "I haven't bought a gun"), it is no plan and no means.
    _rule(
        "plan",
        r"\b(?:have|got|made|making) a plan\b"
        r"|\b(?:planned|planning|worked out|figured out|decided) (?:how|when|where|to)\b"
        r"|\bknow (?:how|when|where|exactly how|exactly when) i (?:am going to|would|will|could)"
        r" (?:do it|end it|kill myself)\b"
        r"|\bcollecting (?:up )?(?:my |the )?(?:pills|tablets|meds|medication)\b",
        negated_on_its_verb=True,
    ),
    # Getting ready: a goodbye note, a stockpile, ways looked up. A warning sign on its own,
    # imminent with the act announced ("take them all") or alongside ideation.
    _rule(
        "preparation",
        r"\b(?:written|wrote|writing|write|left|leaving) (?:my |a |the |some )?(?:suicide|"
        r"goodbye|farewell) (?:note|letter|notes|letters)\b|\bsuicide notes?\b"
        r"|\b(?:research(?:ing|ed)?|look(?:ing|ed)? up|search(?:ing|ed)? for|googl(?:ing|ed)) "
        r"(?:ways|how|methods) to (?:die|kill myself|end my life|overdose)\b"
        # "I looked up how many it would take"; not how many a day is safe.
        r"|\b(?:research(?:ing|ed)?|look(?:ing|ed)? up|search(?:ing|ed)? for|googl(?:ing|ed)|"
        r"check(?:ing|ed)) (?:how many|how much)(?: \w+){0,2} (?:it (?:would |will )?takes?|"
        r"(?:would|will|it takes to|to) (?:kill|die|overdose))\b"
        r"(?! (?:to (?:work|kick in|feel|help|get|sleep)|for (?:a|the|my) (?:headache|pain)))"
        r"|\blethal dose\b"
        r"|\b(?:written|wrote|writing|left) (?:letters|notes|a letter|a note) (?:to|for) "
        r"(?:everyone|everybody|all of them|each of them|the people i love|my loved ones)\b"
        # A weapon or blade held: "I have the gun in my hand" (a kitchen knife may be cooking).
        r"|\b(?:gun|pistol|noose|razor|razor blade|blade) (?:is )?in my hands?\b"
        # Not a game's, a film's or a toy's.
        r"(?!.*\b(?:game|video ?game|vr|movie|film|toy|nerf|water gun|glue gun|staple gun|"
        r"shaving|shave)\b)"
        r"|\b(?:(?:saving|saved) (?:up (?:all )?(?:of )?(?:my |the |some )?|(?:all )?(?:of )?my )"
        r"|(?:stockpiling|stockpiled|hoarding|hoarded) (?:up )?(?:all )?(?:of )?(?:my |the |some )?)"
        r"(?:(?:sleeping|pain|anxiety|prescription|old|heart) )?(?:pills|tablets|meds|medication|"
        r"medicine|painkillers)\b"
        r"|\b(?:pills|tablets|meds|medication|painkillers) (?:saved|stockpiled|hoarded)\b",
        own_subject=True,
    ),
    # Letters that are a goodbye by whom they are for: "I've written letters to my family".
    _rule(
        "preparation",
        r"\b(?:(?:written|wrote|writing|left|leaving|finished) (?:(?:goodbye|farewell|last) )?"
        r"letters|(?:written|wrote|writing) (?:(?:goodbye|farewell|last) )?notes) (?:to|for) "
        r"(?:each of |all of |every one of )?(?:my |all my )?(?:(?:wife|husband|partner|mum|mom|"
        r"dad) and )?(?:family|families|kids|children|parents|"
        r"loved ones|friends and family|family and friends|boys|girls|sons|daughters|"
        r"husband and kids|wife and kids|partner and kids|grandchildren|grandkids)\b"
        r"|\b(?:written|wrote|writing|left) (?:a letter|a note) (?:to|for) (?:each|every one|all) "
        r"of (?:my (?:family|kids|children|loved ones|friends)|them)\b",
        own_subject=True,
        unless=_EVERYDAY_LETTERS,
    ),
    # Pills laid out or in front of me ("the pills are right here in front of me"); not a dose
    # set out to be taken as prescribed ("...I need to take my antibiotics", "...for the week").
    _rule(
        "preparation",
        r"\b(?:laid|lined|counted|set) (?:out |up )?(?:all )?(?:of )?(?:my |the )?"
        r"(?:pills|tablets|meds|painkillers)(?: out| up)?(?: in front of me)?\b"
        r"|\b(?:pills|tablets|meds|painkillers) (?:are |is )?(?:(?:right )?here )?(?:laid out|"
        r"lined up|counted out|in front of me)\b",
        own_subject=True,
        unless=_A_DOSE_AS_PRESCRIBED,
    ),
    _rule(
        "acquired_means",
        r"\b(?:bought|got|have|found|ordered|getting) (?:a|the|some) (?:rope|noose|gun|pistol|"
        r"rifle)\b",
        negated_on_its_verb=True,
    ),
    _rule(
        "means",
        r"\b(?:pills|tablets|overdose|rope|noose|gun|firearm|pistol|rifle|knife|knives|razor|"
        r"blade|blades|bridge|ledge|rooftop|roof|balcony|overpass|train tracks|cliff|bleach|"
        r"poison|car exhaust|bottle of)\b",
        negated_on_its_verb=True,
    ),
    # A wish to jump said with nothing after it ("I'm on the roof and I want to jump"): from a
    # height, or with a time, it is imminent; alone it is ambiguous. "Jump into the pool",
    # "jump up and down" go on after "jump" and are not this.
    _rule(
        "jump_wish",
        r"\b(?:want|wants|wanted|wanting|wanna|need|needs|thinking (?:about|of)|thought "
        r"(?:about|of)) (?:to )?jump(?:ing)?(?= *(?:$|[,;]|(?:and|but|so|now|tonight|today|"
        r"right now|soon)\b))",
        own_subject=True,
    ),
    # Means held or a height stood on, in the speaker's own voice: nothing alone ("I'm on the
    # bridge" is a walk), imminent after an earlier disclosure in the same session.
    _rule(
        "means_at_hand",
        r"\b(?:have|got|holding|hold|bought|grabbed|took out|laid out|lined up) (?:got )?"
        r"(?:the |a |my |some |all (?:of )?(?:my |the )?|these |those |enough )?"
        r"(?:(?!(?:no|none|zero|nothing)\b)\w+ )?"  # "I have no pills" holds none
        r"(?:pills|tablets|meds|medication|painkillers|knife|razor|blade|blades|gun|rope|noose|"
        r"bleach|poison)\b"
        # "I've got enough" (of a medicine looked up): what a stockpile was for.
        rf"|\b(?:have|got) enough(?: (?:pills|tablets|meds|of them))?(?: now)?{_CLAUSE_END}"
        rf"|{_AT_A_HEIGHT}",
        own_subject=True,
    ),
    # On a height, said with hopelessness ("I'm on the roof and I just want it to be over"):
    # imminent; alone it is a walk.
    _rule("at_height", rf"{_AT_A_HEIGHT}{_NOT_A_HEIGHT}", own_subject=True),
    # Means made ready: a noose tied, "the rope is ready". No everyday sense said this way.
    _rule(
        "means_ready",
        r"\b(?:tied|made|set up|put up|hung|hanging|tying|making) (?:a|the|my) noose\b"
        r"|\bnoose (?:is |was )?(?:ready|tied|set up|up|in the)\b"
        r"|\b(?:the|my) (?:rope|noose)(?:'s| is| has been) (?:all )?(?:ready|tied|set up|up|"
        r"in place)\b(?! (?:for|to)\b)",
        own_subject=True,
        negated_on_its_verb=True,
    ),
    # A blade held to the body ("a knife to my wrist"), or shut in alone with the means ("I've
    # locked myself in the bathroom with a razor"). Not shaving, nor someone else's knife.
    _rule(
        "means_ready",
        _BLADE_TO_MY_BODY,
        own_subject=True,
        unless=_SHAVED_OR_ATTACKED,
    ),
    _rule(
        "means_ready",
        r"\b(?:locked myself|i am locked) in\b[^.;]{0,40}?\b(?:with|and i have|and i have got|"
        r"and i got|i have|i have got) (?:a|the|my|some|all (?:of )?my|these|those) (?:\w+ )?"
        r"(?:razors?|razor blades?|blades?|knife|knives|pills|tablets|meds|medication|painkillers|"
        r"rope|gun|pistol|noose|belt|cord|bleach|poison)\b",
        own_subject=True,
        unless=r"\b(?:shav\w*|stud(?:y|ying)|revis\w*|routine|as usual|every (?:day|morning|"
        r"night)|accident\w*|by mistake|keys?|tools)\b",
    ),
    # A knife held ("I have a knife in my hand"): a disclosure alone, imminent with despair or
    # ideation; not while cooking, opening a parcel or whittling.
    _rule("means_in_hand", _KNIFE_IN_HAND, own_subject=True, unless=_A_MEAL_OR_A_CRAFT),
    # The gas let on: nothing alone, imminent with despair or ideation; not to cook or heat.
    _rule("gas_on", _GAS_ON, own_subject=True, unless=_A_GAS_COOKER_IN_USE),
    # The gas let on and the room sealed, each said in a sentence of its own: together, the
    # act the rule above finds in one sentence, unless an everyday reason is given anywhere.
    _rule("gas_let_on", _I_LET_THE_GAS_ON, own_subject=True, unless=_A_GAS_COOKER_IN_USE),
    _rule("room_sealed", _I_SEALED_THE_ROOM, own_subject=True, unless=_A_GAS_COOKER_IN_USE),
    _rule("everyday_reason", _AN_EVERYDAY_REASON + "|" + _A_GAS_COOKER_IN_USE, negatable=False),
    # On the bridge, the ledge or the roof's edge, said with nothing after it: a disclosure.
    _rule("at_height_bare", _ON_THE_EDGE, unless=_AN_OUTING),
    # A wound that will not stop: with self-harm said of now, an emergency under way.
    _rule(
        "bleeding",
        r"\b(?:will not|cannot|does not|is not|would not|did not) stop bleeding\b"
        r"|\bbleeding (?:a lot|so much|heavily|badly|everywhere|loads)\b"
        r"|\b(?:a lot of|so much|lots of|loads of|too much) blood\b",
        negatable=False,
    ),
    _rule(
        "do_it",
        r"\b(?:going to|will|about to|want to|need to|have to|ready to|might|may) "
        r"(?:do it|use it)\b"
        r"|\bi am (?:doing|using) it\b"  # "...so I'm doing it tonight"
        # What means were got for, or what is next after an earlier disclosure ("I bought a
        # gun to end it"); not ending it with someone.
        r"|\b(?:to|going to|will|about to|i can|i could) end it\b(?! with| between| all| off)"
        rf"|\b(?:to|going to|will|about to|am|i am|can|could) {_TAKE_ALL}",
        negated_on_its_verb=True,  # "I'm not going to do it"
    ),
    # A goodbye, or a last message or last words; not a goodbye for now, nor to a job or a habit
    # ("this is goodbye to my old flat"), nor a last message before bed.
    _rule(
        "farewell",
        r"\bthis is (?:my )?(?:(?:last|final) )?goodbye\b(?! for (?:now|today|tonight|the "
        r"(?:day|night|week|weekend))| until| till|(?: forever)? to (?:my|the|our|this|that) "
        r"(?!world|life\b))"
        r"|\b(?:this is|here is|these are) (?:my|the) (?:last|final) (?:words|message|"
        r"thing i will say)\b(?! (?:for|before|of|to|until|till|today|tonight|on)\b)"
        # Spoken of as gone: "tell them I loved them".
        rf"|{_TELL_THEM}(?:loved|did love) {_THOSE_LOVED}",
        negatable=False,
        unless=_SEE_THEM_SOON,
    ),
    _rule(
        "farewell",
        r"\blast time (?:we will|i will|you will) (?:talk|speak|hear from me)\b"
        r"|\bwill not be (?:here|around|alive) (?:tomorrow|much longer|by morning|next week)\b"
        r"|\bby the time (?:you|anyone|they) (?:read|hear|find)\b",
        negatable=False,
    ),
    # Words left for those who remain, or a farewell said to be the last ("tell my mum I'm
    # sorry", "this is my final goodbye", "goodbye forever"): with a goodbye, imminent.
    _rule(
        "last_words",
        rf"{_TELL_THEM}(?:(?:love|loved|did love) {_THOSE_LOVED}|(?:am|was) sorry\b"
        # Sorry for everything, not for yelling or for being late.
        r"(?! (?:for|about) (?!everything\b|all\b|it all\b|what i\b|this\b|leaving\b|being "
        r"(?:a|such a) burden\b))|never meant)"
        r"|\b(?:this is|here is|consider this|take this as) (?:my|a) (?:last|final) (?:goodbye|"
        r"farewell)\b(?! (?:to|episode|party|tour|show|concert|gig|match|game|for|before)\b)"
        r"|\b(?:this is|it is|saying) goodbye forever\b(?! to\b)",
        negatable=False,
        unless=_SEE_THEM_SOON,
    ),
    _rule(
        "shared",
        r"\b(?:i (?:feel|think) the same(?: way)?|me too|so do i|i do too|same here|"
        r"i feel that way too)\b",
        negatable=False,
    ),
    # Ambiguous distress.
    _rule(
        "distress",
        r"\bcannot (?:do this|take (?:it|this)|keep going|go on|keep living|cope) (?:anymore|"
        r"any more|any longer|much longer|like this)\b|\bcannot go on\b"
        r"|\bhow much longer i can (?:keep going|go on|take|do this)\b"
        r"|\bnot sure (?:if |whether |that )?i can (?:keep going|go on|keep doing this|"
        r"do this anymore|take (?:it|this|much more))\b(?! (?:a|an|the|my|our|this|that)\b)"
        r"|\bdo not know how (?:to|i can) (?:keep going|go on)\b"
        r"(?! (?:a|an|the|my|our|this|that)\b)"
        r"|\bwhat is (?:even )?the point\b|\bno point (?:in|to) (?:anything|trying|any of)\b"
        r"|\b(?:hopeless|worthless|helpless|pointless|meaningless)\b"
        r"|\b(?:want|wish) (?:i could )?(?:to )?(?:just )?disappear\b"
        r"|\b(?:a|such a) burden\b"
        r"|\b(?:want|need) (?:it all|everything|the pain|this|it) to (?:stop|end|be over)\b"
        r"|\bno way out\b|\btrapped\b"
        r"|\b(?:nothing|things) (?:is |are )?(?:ever )?(?:going to|will) (?:ever )?get better\b"
        r"|\bnever going to get better\b"
        r"|\b(?:feel|feeling) (?:so |completely |totally )?empty\b"
        r"|\btired of everything\b"
        r"|\b(?:thinking (?:of|about) )?end(?:ing)? it\b(?! with| between| all)"
        r"|\brather die than\b|\bdo (?:something|anything) stupid\b"
        r"|\bgiving (?:some of |all )?(?:of )?my (?:things|stuff|belongings) away\b"
        r"|\bgiving away (?:all )?(?:of )?my (?:things|stuff|belongings)\b"
        r"|\b(?:think|thinking|thought) (?:about|of) (?:death|dying)\b"
        r"|\b(?:give|giving|given|gave) up on (?:life|living)\b|\bmy life is over\b"
        r"|\bcannot (?:keep )?(?:live|living) like this\b"
        # "I just want to be with grandma again": grief, or a wish to die; one question tells.
        r"|\b(?:want|wish|ready|going) to (?:go )?(?:be with|join) (?:my )?(?:late )?"
        rf"{_KIN} again\b",
        own_subject=True,
    ),
    _rule(
        "distress",
        r"\bdo not want to be here\b|\bdo not see (?:a|any) (?:future|way forward|point)\b"
        r"|\b(?:do not|cannot) (?:really |even |honestly |just )?see (?:the|a|any) point "
        r"(?:anymore|any more|of anything|in anything|of trying|in trying|of it all|"
        r"in any of it)\b",
        negatable=False,
        own_subject=True,
    ),
    # Not feeling safe, bare ("I don't feel safe right now"): perhaps of oneself, perhaps of
    # something else; one safety question tells which. The night ahead doubted to be lived
    # through ("I'm not sure I'll make it through the night"): perhaps despair, perhaps illness.
    _rule(
        "distress",
        rf"\bi (?:do not|no longer|never) feel safe{_SAFE_END}"
        rf"|\bi am not feeling safe{_SAFE_END}"
        rf"|{_DOUBT_I_WILL}{_THE_NIGHT_AHEAD}",
        negatable=False,
        own_subject=True,
    ),
    # A time set for something left unnamed ("tonight is the night", "today's the day"): with
    # hopelessness or ideation, the time of the act; alone, of a party.
    _rule(
        "time_set",
        r"\b(?:(?:tonight|today)(?: is|'s) the (?:night|day)|this is the night)\b"
        r"(?= *(?:$|[,;]|(?:and|but|so|because)\b))",
    ),
    # ...and a method and a time settled, said bare: "I know how and when". Not knowing how and
    # when to do something named ("...to ask for help").
    _rule(
        "time_set",
        r"\b(?:know|decided|worked out|figured out|planned|picked|chosen|chose) (?:exactly )?"
        r"(?:how and when|when and how|how and where|where and how|when and where|"
        r"where and when|how, when and where|when, where and how|the how and the when)\b"
        r"(?= *(?:$|[,;]|(?:and|but|so|now|already|i (?:will|would|am going to))\b))",
        own_subject=True,
        negated_on_its_verb=True,
    ),
    # A time: read last, as it counts only said with an intent, a "do it" or a wish to jump in
    # its sentence, or said on its own ("I'm going to kill myself. Tonight."), and not as the
    # time of a scheduled event ("my exam is tomorrow"); see _read_sentence.
    _rule(
        "time_future",
        r"\b(?:tonight|tomorrow|this (?:weekend|evening|afternoon|week)|the night|"
        r"after (?:everyone|everybody|they|my \w+)(?:'s| goes| go| is| are| falls?)|in an? hour|"
        r"in a few (?:hours|minutes)|on (?:monday|tuesday|wednesday|thursday|friday|saturday|"
        r"sunday))\b",
        negatable=False,
    ),
    _rule("time_now", r"\b(?:today|right now|now|right here)\b", negatable=False),
]

_NEGATORS: Final = re.compile(r"\b(?:not|never|no|nothing|nobody|none|no longer|without)\b")
# Phrases with a negating word that do not negate what follows.
_NOT_NEGATIONS: Final = re.compile(
    r"\b(?:no one|nobody|no-one|no matter|no reason|no point|not even|not okay|not ok|not fine|"
    r"not sure|cannot stop|can not stop|could not stop|cannot help|cannot get|cannot shake|"
    r"do not know|did not know|not going to lie|not to be dramatic|not gonna lie|"
    r"does not matter|no idea"
    # A denial given up on is none: "I can't promise I won't do it".
    r"|(?:cannot|can not|could not|will not) promise(?: you)?(?: that)? i(?: will| am)? not"
    r"|not sure(?: that)? i(?: will| can| could)(?: not)?)\b"
)
# A time itself denied: "I want to kill myself, but not tonight".
_DENIED_TIME: Final = re.compile(r"\b(?:not|never)(?: (?:until|till|before|for))? *$")
_NEGATED_AFTER: Final = re.compile(
    r"^\W*(?:is|was|would be|has|would)? ?(?:not|never|off the table|out of the question)\b"
    r"|\b(?:is|was) not (?:something|an option)\b|\bnever crossed my mind\b"
    r"|\bnot (?:something|an option) i\b"
)
_ACCIDENT: Final = re.compile(
    r"\b(?:accident|accidentally|by mistake|stove|oven|pan|iron|ironing|cooking|making dinner|"
    r"chopping|shaving|gym|playing|fell|slipped|tripped|kettle|hot water)\b"
    # Cut or burned on something ("on a broken glass"), not on a part of the body.
    r"|\bmyself on (?:a|an|the|some) (?:broken |sharp |rusty |tin |hot )?(?:knife|glass|bottle|"
    r"piece of|can|tin|nail|paper|wire|thorn|grater|fence|edge|saw|tray|plate|mug|kettle)\b"
)
# A mishap the sentence told just before ("I slipped on the ice and cut my hand"). Not "fell
# apart", "slipped up" or a bare "slipped": told of self-harm, those are a relapse, not a fall.
_MISHAP_BEFORE: Final = re.compile(
    r"\b(?:slipped (?:on|in|off|down)|tripped (?:on|over)|fell (?:off|over|down|from|on|out of|"
    r"into (?:a|the))|(?:was|were) (?:cooking|chopping|making dinner|shaving|gardening)|"
    r"accidentally|by accident|by mistake)\b[^.;]*$"
)
# What happened next in it: only "and (then) (I)" between the mishap's clause and the words.
_WHAT_HAPPENED_NEXT: Final = re.compile(r"and (?:then )?(?:i )?")
# Said to be meant, what an accident word would excuse is not one ("I cut myself on purpose
# while cooking", "...and cut myself because I wanted to feel something").
_MEANT: Final = re.compile(
    r"\b(?:on purpose|deliberately|intentionally|purposely|to (?:punish|hurt) myself|"
    r"(?:wanted|want|needed|need) to (?:feel|hurt|punish|bleed)|to feel (?:something|anything|"
    r"better|pain|real|alive)|because i (?:wanted|needed|deserved?|hate myself)|i deserved? it)\b"
)

# A "not" on the verb of what it negates, with nothing but these words between.
_NEGATED_VERB: Final = re.compile(
    r"\b(?:not|never|no)(?: (?:really|even|actually|honestly|yet|currently|ever|exactly|"
    r"think|believe|i|have|had|do|did|got|gotten|a|an|any|the|my|some))* *$"
)

# -- times, and what they are said with -------------------------------------------------------

_TIMES: Final[frozenset[Signal]] = frozenset({"time_future", "time_now"})
# What a time in the same sentence makes imminent ("I'm alone tonight and I want to kill
# myself", "I want to jump tonight", "I'm going to do it tonight" after an earlier disclosure).
_TIMED: Final[frozenset[Signal]] = IDEATION_SIGNALS | {"jump_wish", "do_it"}
# Means at hand that make ideation imminent only when the ideation is of now.
_AT_HAND: Final[frozenset[Signal]] = frozenset({"means", "means_in_hand", "gas_on"})
# What can be told of a remote past, and is then not what a time makes imminent.
_TOLD_OF_A_PAST: Final[frozenset[Signal]] = IDEATION_SIGNALS | {"act_in_progress"}
# A clause with a subject of its own: a time in it, in a sentence with no intent, tells of
# that. Said alone, a time is of what was said before ("I'm going to kill myself. Tonight.").
_OWN_CLAUSE: Final = re.compile(
    r"\b(?:i|we|you|he|she|they|my|our|your|his|her|their|there)\b"
    r"|\b(?:the|a|an|this|that) \w+ (?:is|are|was|were|will|has|have|starts|ends|begins)\b"
)
# A scheduled event: a time said with one is its time ("my therapy appointment is tomorrow",
# "tomorrow's exam"), not the time of an intent in the same sentence.
_EVENT: Final = (
    r"(?:appointments?|appts?|sessions?|therapy|counsel+ing|meetings?|exams?|examinations?|"
    r"tests?|quiz|quizzes|shifts?|class|classes|lessons?|lectures?|seminars?|tutorials?|"
    r"interviews?|doctors?|gp|dentist|therapist|psychiatrist|psychologist|counsel+or|nurse|"
    r"check-?ups?|consultations?|clinic|presentation|training|practice|rehearsal|"
    r"support group|group session)(?:'s)?"
)
# Between an event and its time: "appointment tomorrow", "exam is tomorrow", "shift starts
# tomorrow"; two words at most, and none that ties the time to something else instead ("after
# my appointment tomorrow", "...and tomorrow").
_EVENT_THEN_TIME: Final = re.compile(rf"\b{_EVENT}((?: [\w']+){{0,2}}) *$")
# ...and after a time: "tomorrow's exam", "tomorrow I have an exam", "today is my session".
_TIME_THEN_EVENT: Final = re.compile(
    r"^(?:'s)?(?: (?:i|we|have|has|had|got|is|was|will|be|am|there|my|our|a|an|the|another|"
    r"this|that|first|next|big|final|morning|afternoon|evening|night|at|\d\S*|am|pm)){0,4} "
    rf"{_EVENT}\b"
)
# What makes an event the time of something else: "I'll do it after my appointment tomorrow",
# "I'm skipping class tomorrow".
_TIMING_SOMETHING_ELSE: Final = re.compile(
    r"\b(?:after|before|during|until|till|til|instead|rather|skip|skipping|miss|missing|"
    r"cancel|cancelling|canceling|ditch|ditching|leave|leaving|from)\b"
)
# A remote past: "I cut myself when I was 15", "I used to", "as a teenager", "years ago".
_REMOTE_PAST: Final = re.compile(
    r"\b(?<!am )(?<!are )(?<!get )(?<!got )(?<!like i )(?<!as i )used to\b"
    r"|\bwhen i was\b|\bi was (?:\d+|ten|eleven|twelve|(?:thir|four|fif|six|seven|eigh|"
    r"nine)teen|a (?:kid|child|teen|teenager|student)|younger|little) when\b"
    r"|\bas a (?:kid|child|teen|teenager|young (?:adult|person|woman|man|girl|boy)|student|"
    r"girl|boy)\b"
    r"|\b(?:years|decades) (?:ago|back)\b|\b(?:a long time|long) ago\b"
    r"|\bback (?:then|in (?:the day|school|high school|college|uni|university|\d{4}))\b"
    r"|\bin (?:high school|middle school|secondary school|my (?:early |late )?(?:teens|"
    r"twenties|20s|youth))\b|\bgrowing up\b|\blast year\b|\bin the past\b|\bin (?:19|20)\d\d\b"
)
# What says now: the past told before it is not what follows ("I used to cut myself, but now
# I want to again"), and what it follows in its clause is of now ("I did it again today").
_NOW: Final = re.compile(
    r"\b(?:now|these days|nowadays|today|tonight|tomorrow|again|lately|recently|still|"
    r"anymore|any more|currently|at the moment)\b"
)
# What turns from the past to now: "but", a "now", or the speaker's present ("I cut myself
# years ago and I want to kill myself tonight").
_TURN_TO_NOW: Final = re.compile(
    rf"\b(?:but|however)\b|{_NOW.pattern}"
    r"|\bi(?= (?:am|want|wanna|need|will|feel|keep|cannot|can|plan|intend|wish)\b)"
)

# -- a safety check and the answer to it ----------------------------------------------------------

_SAFETY_CHECK: Final = re.compile(
    r"\b(?:are|have|were) you (?:been )?(?:having |had )?(?:thinking|thoughts?|thought|"
    r"considering|feeling|planning)\b[^?]*\b(?:suicide|suicidal|kill(?:ing)? yourself|"
    r"end(?:ing)? your (?:own )?life|hurt(?:ing)? yourself|harm(?:ing)? yourself|self-?harm|"
    r"tak(?:e|ing) your (?:own )?life|not wanting to (?:live|be alive|be here)|wanting to die|"
    r"not being here)"
    r"|\bare you (?:feeling )?suicidal\b"
    r"|\bdo you (?:want|feel like you want) to (?:die|hurt yourself|end your life|kill yourself)"
    r"|\bthoughts? of (?:suicide|ending your life|killing yourself|hurting yourself|self-?harm)",
    re.IGNORECASE,
)
# Asked whether the person is safe: the answer's polarity is the other way round ("no" is the
# risk).
_SAFE_CHECK: Final = re.compile(
    r"\b(?:are you|do you feel|will you be|are you going to be|would you be) "
    r"(?:safe|somewhere safe|in a safe place)\b"
    r"|\bcan you (?:keep|stay) (?:yourself )?safe\b",
    re.IGNORECASE,
)
_DENIAL_START: Final = re.compile(
    r"^\W*(?:no|nope|nah|not at all|god no|of course not|absolutely not|definitely not|never|"
    r"no way|i am not|i would never|not really)\b"
)
_AFFIRM: Final = re.compile(
    r"^\W*(?:yes|yeah|yep|yup)\b"
    # "I am", "I have", "I do": not "I am not", nor "I'm fine" (how they are, not a yes).
    r"|^\W*i (?:am|have|do)\b(?! not| never| nothing| (?:fine|okay|ok|good|alright|all right|safe)\b)"
    r"|\b(?:yes|yeah|yep|yup|i think about it|i thought about it|i have thought about it|"
    r"think about it sometimes|it crosses my mind|it has crossed my mind|i do sometimes|"
    r"honestly yes)\b|^\W*i am\W*$"
)
_HEDGE: Final = re.compile(
    r"\b(?:sometimes|maybe|kind of|sort of|a little|a bit|i guess|i think so|probably|"
    r"on and off|now and then)\b"
)
# Answers to "are you safe?" that say no without starting with it, and ones that say yes.
_NOT_SAFE_ANSWER: Final = re.compile(
    r"\b(?:i do not (?:think|feel) (?:so|safe|like it)|not (?:really|exactly|very|entirely)"
    r"(?: safe)?|not safe|i am not)\b"
)
_NO_START: Final = re.compile(r"^\W*(?:no|nope|nah)\b")
_SAFE_ANSWER: Final = re.compile(r"^\W*(?:i am safe|i am fine|i am okay|i am ok|safe)\b")
_UNSURE: Final = re.compile(r"\b(?:i do not know|not sure|hard to say|i cannot say|idk)\b")


def is_safety_check(assistant_text: str) -> bool:
    """Whether the assistant asked the user directly about suicide, self-harm or safety."""
    return safety_question(assistant_text) is not None


def safety_question(assistant_text: str) -> SafetyQuestion | None:
    """What the assistant asked directly, if it did: about a risk, whether the person is safe,
    or both ("Are you safe, or are you thinking of hurting yourself?")."""
    risk = bool(_SAFETY_CHECK.search(assistant_text))
    safe = bool(_SAFE_CHECK.search(assistant_text))
    if risk and safe:
        return "both"
    return "risk" if risk else "safe" if safe else None


@dataclass
class _Reading:
    signals: set[Signal] = field(default_factory=set)
    reasons: dict[Signal, str] = field(default_factory=dict)
    present: set[Signal] = field(default_factory=set)
    """Signals said of now at least once, not only of a remote past ("when I was 15")."""
    negated: bool = False
    denied: set[Signal] = field(default_factory=set)
    """Signals negated where said ("I don't want to die"): what a "do it" may still refer to."""
    other_subject: bool = False
    accidental: bool = False
    quoted: bool = False
    idiom: bool = False


def normalise(text: str) -> str:
    """Lower case, one kind of quote, contractions spelled out, single spaces."""
    text = text.lower()
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text.strip()


def classify(text: str, context: ScreeningContext | None = None) -> CrisisAssessment:
    """The crisis level of one user utterance."""
    context = context or ScreeningContext()
    reading = _read(text)
    assessment = _level(reading, context)
    if context.after_safety_check:
        assessment = _after_safety_check(normalise(text), assessment, context.safety_question)
    return assessment


def classify_many(texts: Iterable[str]) -> list[CrisisAssessment]:
    """``classify`` each text on its own (no conversation context)."""
    return [classify(text) for text in texts]


def _read(text: str) -> _Reading:
    reading = _Reading()
    normal = normalise(text)
    without_quotes = _strip_quotes(normal)
    reading.quoted = without_quotes != normal
    stripped = _LYRIC_OR_READING.sub(" ", without_quotes)
    reading.quoted = reading.quoted or stripped != without_quotes
    unidiomatic = _IDIOMS.sub(" ~ ", stripped)
    reading.idiom = unidiomatic != stripped
    sentences = _SENTENCE_BREAK.split(unidiomatic)
    # Each sentence as said, idioms in ("my battery is dying"): what a rule's ``unless`` reads.
    # An idiom never holds a sentence break, so the two splits pair up; if not, the whole.
    said = _SENTENCE_BREAK.split(stripped)
    if len(said) != len(sentences):
        said = [stripped] * len(sentences)
    for sentence, as_said in zip(sentences, said, strict=True):
        if sentence.strip():
            _read_sentence(sentence, reading, as_said, unidiomatic)
    return reading


def _strip_quotes(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        before = text[max(0, match.start() - 60) : match.start()]
        if _OWN_SPEECH.search(before):
            return " " + match.group(0).strip("\"'") + " "  # the user's own words count
        return " "

    return _QUOTE_SPAN.sub(replace, text)


def _read_sentence(sentence: str, reading: _Reading, said: str, unidiomatic: str) -> None:
    breaks = [match.start() for match in _CLAUSE_BREAK.finditer(sentence)]
    timed = False  # something a time in this sentence makes imminent was said
    denied: set[int] = set()  # the clauses (by start) where a signal was negated
    for rule in _RULES:
        for match in rule.pattern.finditer(sentence):
            if (rule.unless and rule.unless.search(said)) or (
                rule.needs and not rule.needs.search(unidiomatic)
            ):
                break  # everyday words said with it, or what it needs left unsaid
            start = max((at for at in breaks if at <= match.start()), default=0)
            end = min((at for at in breaks if at >= match.end()), default=len(sentence))
            before, after = sentence[start : match.start()], sentence[match.end() : end]
            if rule.needs_own_subject and _someone_else(before):
                reading.other_subject = True
                continue
            if rule.negatable and (
                _negated_on_its_verb(before, after)
                if rule.negated_on_its_verb
                else _negated(before, after)
            ):
                reading.negated = True
                reading.denied.add(rule.signal)
                denied.add(start)
                continue
            if rule.signal == "self_harm" and _accidental(sentence, start, match.start(), end):
                reading.accidental = True
                continue
            signal, reason = rule.signal, rule.reason or rule.signal
            if signal in _TIMES and (
                _of_a_scheduled_event(sentence, match.start(), match.end())
                # The time of what its clause denies ("...but I'm not going to do it tonight"),
                # or a time denied ("...but not tonight").
                or start in denied
                or _DENIED_TIME.search(_NOT_NEGATIONS.sub(" ", before))
                # In a sentence with no intent, a time in a clause of its own tells of that.
                or (not timed and _OWN_CLAUSE.search(f"{before} {after}"))
            ):
                continue  # the time of an appointment, or of something else
            past = signal in _TOLD_OF_A_PAST and _told_of_a_remote_past(
                sentence, match.start(), match.end()
            )
            if signal == "act_in_progress" and past:
                signal, reason = "past_attempt", "past_attempt"  # "...when I was 15"
            reading.signals.add(signal)
            reading.reasons.setdefault(signal, reason)
            if past:
                continue  # said of now too, later in the sentence?
            if signal in _TIMED:
                reading.present.add(signal)
                timed = True
            break


def _told_of_a_remote_past(sentence: str, at: int, end: int) -> bool:
    """Whether the words at ``sentence[at:end]`` tell of a remote past ("I cut myself when I
    was 15", "I used to cut myself"): said so between the nearest turns to now around them
    ("but", "now", "I want"...), so "I used to, but now I want to cut myself" is not; nor is
    what a "now" follows in its clause ("...and I cut myself again today")."""
    now = _NOW.search(sentence, end)
    clause_end = _CLAUSE_BREAK.search(sentence, end)
    if (
        now
        and (not clause_end or now.start() <= clause_end.start())
        and not _REMOTE_PAST.search(sentence, end, now.start())
    ):
        return False  # "I cut myself years ago and I cut myself again today"
    start = max((turn.end() for turn in _TURN_TO_NOW.finditer(sentence, 0, at)), default=0)
    turn = _TURN_TO_NOW.search(sentence, end)
    return bool(_REMOTE_PAST.search(sentence, start, turn.start() if turn else len(sentence)))


def _of_a_scheduled_event(sentence: str, at: int, end: int) -> bool:
    """Whether the time at ``sentence[at:end]`` is that of a scheduled event said with it ("my
    therapy appointment is tomorrow", "tomorrow's exam"), not of something the event times
    ("I'll do it after my appointment tomorrow")."""
    event = _EVENT_THEN_TIME.search(sentence, 0, at)
    if event and not (
        _TIMING_SOMETHING_ELSE.search(" ".join(sentence[: event.start()].split()[-3:]))
        or _TIMING_SOMETHING_ELSE.search(event.group(1))
        or _CLAUSE_BREAK.search(event.group(1))  # "...my appointment, and tomorrow"
    ):
        return True
    return bool(_TIME_THEN_EVENT.match(sentence[end:]))


def _accidental(sentence: str, start: int, at: int, end: int) -> bool:
    """Whether self-harm words at ``at`` in the clause ``sentence[start:end]`` tell of an
    accident: said so in the clause ("I burned myself on the stove"), or told as what happened
    next in a mishap just told ("I slipped on the ice and hit my head against the wall"; not
    "...and now I want to cut myself"), and not said to be meant."""
    if _MEANT.search(sentence, start):
        return False
    if _ACCIDENT.search(sentence, start, end):
        return True
    return bool(_WHAT_HAPPENED_NEXT.fullmatch(sentence, start, at)) and bool(
        _MISHAP_BEFORE.search(sentence[max(0, start - 80) : start])
    )


def _someone_else(before: str) -> bool:
    """Whether the nearest subject before a match is another person, not the speaker."""
    other = [match.end() for match in _OTHER_SUBJECT.finditer(before)]
    own = [match.end() for match in _OWN_SUBJECT.finditer(before)]
    return bool(other) and (not own or max(other) > max(own))


def _negated_on_its_verb(before: str, after: str) -> bool:
    """Whether a "not" negates the verb of a match ("I don't have a plan", "I've never made a
    plan"), or a negation follows it in its clause."""
    if _NEGATED_VERB.search(_NOT_NEGATIONS.sub(" ", before)):
        return True
    return bool(_NEGATED_AFTER.search(after))


def _negated(before: str, after: str) -> bool:
    """Whether a negation in the clause governs the match: just before it, or just after it
    ("killing myself is not something I would do")."""
    window = " ".join(_NOT_NEGATIONS.sub(" ", before).split()[-6:])
    if _NEGATORS.search(window):
        return True
    return bool(_NEGATED_AFTER.search(after))


def _level(reading: _Reading, context: ScreeningContext) -> CrisisAssessment:
    signals = reading.signals
    ideation = signals & IDEATION_SIGNALS
    if "shared" in signals and "third_party" in signals:
        ideation = ideation | {"ideation"}
        reading.reasons.setdefault("ideation", "shared_ideation")
    for signal in ("act_in_progress", "act_with_method"):
        if signal in signals:
            return CrisisAssessment(3, signal)
    active = ideation & {"ideation", "suicidal_intent", "self_harm", "unsafe"}
    # What a time makes imminent is what is said of now: not self-harm "when I was 15".
    present = active & reading.present
    if ideation:
        for signal, reason in (
            ("plan", "plan"),
            ("preparation", "plan"),
            ("acquired_means", "means"),
            ("means", "means"),
            ("means_in_hand", "means"),
            ("gas_on", "means"),
            ("farewell", "farewell"),
            ("last_words", "farewell"),
        ):
            # A method named with a remote past ("I took an overdose when I was 15") is that.
            if signal in signals and (signal not in _AT_HAND or ideation & reading.present):
                return CrisisAssessment(3, reason)
        # A time makes active ideation imminent; "I don't want to wake up tomorrow" is not.
        if present and "time_future" in signals:
            return CrisisAssessment(3, "timeframe")
        if present & {"suicidal_intent", "self_harm", "unsafe"} and "time_now" in signals:
            return CrisisAssessment(3, "timeframe")
    # An act left unnamed, given a time: "I'm going to do it tonight", "tonight is the night".
    announced = bool("do_it" in signals and signals & _TIMES) or "time_set" in signals
    # ...said with ideation, even of the past ("I tried to kill myself when I was 15 and I'm
    # going to do it tonight"), or with ideation denied: "I don't want to die but I might do
    # it tonight" still says when.
    # ...or with a goodbye or a stockpile: "I've written letters to everyone and I'm doing it
    # tonight", "I've been saving my pills and tonight's the night".
    if announced and (
        ideation or reading.denied & IDEATION_SIGNALS or signals & {"preparation", "farewell"}
    ):
        return CrisisAssessment(3, "timeframe")
    if "means_ready" in signals:
        return CrisisAssessment(3, "means")
    # On a height, the gas on or a knife in hand, and hopeless: "I'm standing on the bridge and
    # I can't do this anymore", "I can't go on, I've turned the gas on".
    if signals & {"at_height", "gas_on", "means_in_hand"} and signals & {
        "distress",
        "farewell",
        "last_words",
        "preparation",
    }:
        return CrisisAssessment(3, "means")
    # A goodbye plainly the last: "This is goodbye, tell them I loved them", "this is goodbye,
    # I can't do this anymore".
    if signals & {"farewell", "last_words"} and (
        {"farewell", "last_words"} <= signals or signals & {"distress", "preparation"}
    ):
        return CrisisAssessment(3, "farewell")
    # The answer to a safety question just asked: a time set, an act announced, the gas on, a
    # knife in hand or a height ("I know how and when", "I'm on the bridge").
    if context.after_safety_check and (
        announced or signals & {"gas_on", "means_in_hand", "at_height_bare"}
    ):
        return CrisisAssessment(3, "timeframe" if announced else "means")
    # A stockpile and the means at hand: "I looked up how many and I've got enough".
    if "preparation" in signals and "means_at_hand" in signals:
        return CrisisAssessment(3, "means")
    if {"gas_let_on", "room_sealed"} <= signals and "everyday_reason" not in signals:
        return CrisisAssessment(3, "act_in_progress")
    # Self-harm now and a wound that will not stop: "I've cut myself and it won't stop bleeding".
    if "bleeding" in signals and "self_harm" in reading.present:
        return CrisisAssessment(3, "act_in_progress")
    # Hopelessness and a time set for something unnamed: "I can't go on, tonight is the night".
    if "distress" in signals and "time_set" in signals:
        return CrisisAssessment(3, "timeframe")
    if "jump_wish" in signals:
        if "means" in signals:
            return CrisisAssessment(3, "means")
        if signals & {"time_now", "time_future"}:
            return CrisisAssessment(3, "timeframe")
    if "acquired_means" in signals and signals & {"plan", "do_it"}:
        return CrisisAssessment(3, "plan")
    if "preparation" in signals and "do_it" in signals:
        return CrisisAssessment(3, "plan")
    if "farewell" in signals and "plan" in signals:
        return CrisisAssessment(3, "farewell")
    if context.ideation_earlier and (
        signals
        & {
            "plan",
            "preparation",
            "farewell",
            "last_words",
            "acquired_means",
            "jump_wish",
            "means_at_hand",
            "means_in_hand",
            "gas_on",
        }
        or announced
    ):
        return CrisisAssessment(3, "plan_after_ideation")
    if ideation:
        for signal in (
            "past_attempt",
            "suicidal_intent",
            "self_harm",
            "ideation",
            "unsafe",
            "passive_ideation",
            "indirect_ideation",
        ):
            if signal in ideation:
                return CrisisAssessment(2, reading.reasons.get(signal, signal))
    if signals & {"farewell", "last_words"}:
        return CrisisAssessment(2, "farewell")
    if "means_in_hand" in signals:
        return CrisisAssessment(2, "means_at_hand")
    if "at_height_bare" in signals:
        return CrisisAssessment(2, "at_height")
    if "preparation" in signals:
        return CrisisAssessment(2, "preparation")
    if signals & {"distress", "jump_wish"}:
        return CrisisAssessment(1, "distress")
    for flag, reason in (
        (reading.other_subject or "third_party" in signals, "third_party"),
        (reading.negated, "negated"),
        (reading.accidental, "accidental"),
        (reading.quoted, "quoted"),
        (reading.idiom, "idiom"),
    ):
        if flag:
            return CrisisAssessment(0, reason)
    return CrisisAssessment(0, "none")


# A plan of one's own, stated whole, the words ending there: "Yes, I have a plan", "I've worked
# out how". As the answer to "are you thinking of ending your life?" it is the plan asked about.
# Not someone else's or a shared one ("we made a plan", "my therapist and I made a plan"), one
# in the past ("I used to have a plan"), nor a plan for something named ("a plan for the
# weekend", "to get through it", "a safety plan").
_PLAN_STATED: Final = re.compile(
    r"(?<!and )(?<!with )\bi (?:have |had |just |already )*(?:got |made |worked out )?a plan"
    r"(?= *(?:$|[.!;]|, *(?:yes|yeah|i do|now|already|tonight|today)\b|"
    r"(?:,? and|,? now|,? already) *(?:$|[.!;,]|i\b)| for (?:it|that|this|tonight)\b))"
    r"|(?<!and )(?<!with )\bi (?:have |had |just |already )*(?:worked out|figured out|planned|"
    r"decided|know) (?:exactly )?(?:how|when)(?: (?:and|or) (?:how|when|where))?"
    r"(?= *(?:$|[.!;]|, *(?:yes|yeah)\b))"
)


def _after_safety_check(
    normal: str, assessment: CrisisAssessment, question: SafetyQuestion
) -> CrisisAssessment:
    """Read the utterance as the answer to "are you thinking of ending your life?" (a yes is
    the risk), or to "are you safe?" (a no is), or to both (a bare yes or no says neither)."""
    # A plan said with a yes to "are you thinking of ending your life?", or a no to "are you
    # safe?" ("Yes, I'm safe. I have a plan" is a safety plan; "No, we made a plan" a denial).
    answered = (
        bool(_NO_START.search(normal) or _NOT_SAFE_ANSWER.search(normal))
        if question == "safe"
        else not _DENIAL_START.search(normal)
    )
    if assessment.level < 3 and answered and _PLAN_STATED.search(normal):
        return CrisisAssessment(3, "plan")
    if assessment.level >= 2:
        return assessment
    if question == "safe":
        return _after_safe_check(normal, assessment)
    if question == "both" and (
        _AFFIRM.search(normal) or _DENIAL_START.search(normal) or _NOT_SAFE_ANSWER.search(normal)
    ):
        return CrisisAssessment(max(assessment.level, 1), "unclear_after_check")
    if _UNSURE.search(normal) and not _NO_START.search(normal):  # "I'm not sure", not "no"
        return CrisisAssessment(max(assessment.level, 1), "unclear_after_check")
    if _AFFIRM.search(normal):
        return CrisisAssessment(2, "affirmed_after_check")
    if _DENIAL_START.search(normal):
        if _HEDGE.search(normal):
            return CrisisAssessment(1, "unclear_after_check")
        if assessment.level == 0:
            return CrisisAssessment(0, "denied_after_check")
        return assessment
    if _HEDGE.search(normal):
        return CrisisAssessment(2, "affirmed_after_check")
    if _UNSURE.search(normal):
        return CrisisAssessment(1, "unclear_after_check")
    return assessment


def _after_safe_check(normal: str, assessment: CrisisAssessment) -> CrisisAssessment:
    """Read the utterance as the answer to "are you safe right now?": a no (or a hedge) is a
    disclosure of risk to self, a plain yes denies one."""
    if _UNSURE.search(normal) and not _NO_START.search(normal):  # "I'm not sure", not "no"
        return CrisisAssessment(max(assessment.level, 1), "unclear_after_check")
    if _DENIAL_START.search(normal) or _NOT_SAFE_ANSWER.search(normal):
        return CrisisAssessment(2, "unsafe_after_check")
    if _HEDGE.search(normal):
        return CrisisAssessment(max(assessment.level, 1), "unclear_after_check")
    if _AFFIRM.search(normal) or _SAFE_ANSWER.search(normal):
        return CrisisAssessment(0, "denied_after_check") if assessment.level == 0 else assessment
    return assessment
