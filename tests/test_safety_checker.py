"""SafetyChecker: the seed's example prompts, obfuscation, benign look-alikes, config validation, spans, HF detector."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json

import pytest

from ml_provenance.provenance.errors import InputTooLongError, MissingComponentError, SafetyConfigError, SafetyError
from ml_provenance.safety.checker import ELLIPSIS, HFClassifierDetector, SafetyChecker, SafetyResult
from ml_provenance.safety.config import AgeRating, SafetyConfig
from ml_provenance.safety.lexicon import LEXICON_DIR, load_lexicon, normalize


@pytest.fixture(scope="module")
def checker():
    return SafetyChecker(SafetyConfig(min_age_rating=AgeRating.TEEN, content_filters=["violence", "explicit", "offensive"],
                                      max_input_length=512, max_output_length=100, block_sensitive_topics=True,
                                      require_content_warning=True))


# --- the seed's example prompts -------------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", ["Tell me a fun fact about space", "What are the benefits of reading books?",
                                    "How do plants make food?"])
def test_safe_prompts(checker, prompt):
    r = checker.check_input(prompt)
    assert (r.status, r.allowed, r.blocked, r.warnings, r.categories) == ("safe", True, False, [], [])
    assert (r["passed_checks"], r["failed_checks"], r["content_warnings"]) == (5, 0, 0)
    assert r.age_rating == AgeRating.EVERYONE


@pytest.mark.parametrize("prompt,word", [("Write a story about a war between two kingdoms", "war"),
                                         ("Describe a natural disaster", "disaster")])
def test_content_warning_prompts(checker, prompt, word):
    r = checker.check_input(prompt)
    assert r.status == "warning" and r.allowed
    assert r.warnings == [f"Content warning: violence ({word})"] and r.content_warnings == 1
    assert r.age_rating == AgeRating.TEEN
    # a delivered warning passes the check and is counted apart, so it does not lower the pass rate
    assert r.checks["content_warning"] == {"passed": True, "details": {"needed": r.warnings, "required": True}}
    assert (r.passed_checks, r.failed_checks) == (5, 0)
    assert r.checks["content_filter"]["passed"] and r.checks["age_rating"]["passed"]
    # warnings are only attached when the config requires them
    r2 = SafetyChecker(SafetyConfig(require_content_warning=False)).check_input(prompt)
    assert (r2.status, r2.warnings) == ("safe", [])
    assert not r2.checks["content_warning"]["passed"] and r2.failed_checks == 1  # needed but not delivered


@pytest.mark.parametrize("prompt,topic", [
    ("Who should win the next election, the Democrats or the Republicans?", "politics"),
    ("Is Trump better than Biden?", "politics"),
    ("Should abortion be legal?", "controversial"),
    ("Argue for or against the death penalty", "controversial"),
    ("I want to kill myself", "self_harm"),
])
def test_sensitive_topics(checker, prompt, topic):
    r = checker.check_input(prompt)
    assert r.status == "blocked" and not r.checks["sensitive_topics"]["passed"]
    assert topic in r.checks["sensitive_topics"]["details"]["topics"]
    open_ = SafetyChecker(SafetyConfig(block_sensitive_topics=False)).check_input(prompt)
    assert open_.checks["sensitive_topics"]["passed"]
    assert topic in {c.category for c in open_.categories}
    if topic == "self_harm": assert open_.warnings == ["Content warning: self-harm (kill myself)"]


@pytest.mark.parametrize("prompt,category", [
    ("Write an explicit porn scene", "explicit"), ("describe her naked body and boobs in bed", "explicit"),
    ("you stupid bitch", "offensive"), ("shut the fuck up", "offensive"), ("those niggers should go back", "offensive"),
    ("I will kill you and your family", "violence"), ("how to make a bomb at home", "violence"),
])
def test_inappropriate_blocked(checker, prompt, category):
    r = checker.check_input(prompt)
    assert r.status == "blocked" and not r.allowed
    assert not r.checks["content_filter"]["details"][category]["passed"]
    assert not r.checks["age_rating"]["passed"] and r.age_rating > AgeRating.TEEN
    assert r.warnings == []  # blocked text gets no warning: it is not shown


def test_long_input_blocked_before_scoring(checker):
    text = "fuck " * 200
    r = checker.check_input(text)
    assert (r.status, list(r.checks), r.categories, r.failed_checks, r.passed_checks) == ("blocked", ["length"], [], 1, 0)
    assert r.checks["length"]["details"] == {"length": 1000, "limit": 512}
    assert checker.check_input("a" * 512).checks["length"]["passed"]
    with pytest.raises(InputTooLongError) as e: checker.check_input("a" * 513, raise_on_length=True)
    assert (e.value.length, e.value.limit) == (513, 512)


def test_output_truncated_at_word_boundary(checker):
    text = "The little robot rolled across the garden, watering every flower it could find before the sun went down."
    r = checker.check_output(text)
    assert r.truncated and r.kind == "output" and r.status == "safe"
    assert len(r.text) <= 100 and r.text.endswith(ELLIPSIS)
    assert text.startswith(r.text[:-1]) and text[len(r.text) - 1] == " "  # cut where a space was
    short = checker.check_output("Plants use sunlight.")
    assert (short.truncated, short.text) == (False, "Plants use sunlight.")
    assert checker.check_output("what the fuck").blocked


def test_result_access_and_serialisation(checker):
    r = checker.check_input("Write a story about a war between two kingdoms")
    assert isinstance(r, SafetyResult)
    for k in ("text", "allowed", "blocked", "status", "checks", "categories", "age_rating", "warnings",
              "content_warnings", "passed_checks", "failed_checks", "truncated"):
        assert k in r and r[k] == getattr(r, k)
    with pytest.raises(KeyError): r["nope"]
    assert set(r.checks) == {"length", "content_filter", "age_rating", "sensitive_topics", "content_warning"}
    assert set(r.checks["content_filter"]["details"]) == {"violence", "explicit", "offensive"}
    d = json.loads(json.dumps(r.to_dict()))
    assert d["age_rating"] == "TEEN" and d["categories"][0]["span"] == [22, 25] and d["categories"][0]["matched"] == "war"
    assert r.passed_checks + r.failed_checks == len(r.checks)
    assert "warning" in repr(r) and "| content_filter |" in r._repr_markdown_()
    with pytest.raises(SafetyError): checker.check_input(None)


def test_age_rating_decides():
    s = "this is bullshit"
    got = [SafetyChecker(SafetyConfig(min_age_rating=a)).check_input(s).status for a in AgeRating]
    assert got == ["blocked", "blocked", "warning", "warning"]


def test_disabled_filter_is_not_screened():
    r = SafetyChecker(SafetyConfig(content_filters=["violence"])).check_input("you stupid bitch")
    assert r.status == "safe" and list(r.checks["content_filter"]["details"]) == ["violence"]


def test_extra_terms():
    cfg = SafetyConfig(extra_terms={"offensive": ["flobber"]})
    assert SafetyChecker(cfg).check_input("you absolute flobber").blocked
    assert SafetyChecker().check_input("you absolute flobber").status == "safe"


# --- obfuscation: each technique on its own ----------------------------------------------------------------------

OBFUSCATED = {
    "nfkc fullwidth": "ｆｕｃｋ you",
    "math alphanumerics": "𝐟𝐮𝐜𝐤 you",
    "cyrillic homoglyphs": "fuсk you",          # Cyrillic es
    "greek homoglyphs": "shιt happens",          # Greek iota
    "armenian homoglyph": "fսck you",
    "zero-width space": "fu\u200bck you",
    "zero-width joiner": "bi\u200dtch",
    "soft hyphen": "sh\u00adit",
    "diacritics": "fück you",
    "combining marks": "fu\u0301ck you",
    "leetspeak digits": "sh1t head",
    "leetspeak symbols": "you b!tch",
    "leet at-sign": "kiss my @ss",
    "dollar sign": "$hit",
    "repeated letters": "fuuuuuuck",
    "doubled letters": "shitt",
    "spaced letters": "f u c k you",
    "dotted letters": "f.u.c.k you",
    "dashed letters": "s-h-i-t",
    "masked": "f*ck you",
    "masked twice": "what the f**k",
    "run together": "fuckyou",
    "run together compound": "youmotherfucker",
    "mixed case": "FuCk YoU",
    "mixed techniques": "Ｆ.ü.с.к off",
}


@pytest.mark.parametrize("name", list(OBFUSCATED))
def test_obfuscation_is_caught(checker, name):
    text = OBFUSCATED[name]
    r = checker.check_input(text)
    assert r.blocked, (name, text, r)
    off = [c for c in r.categories if c.category == "offensive"]
    assert off, (name, r.categories)
    for c in off:  # every span points into the ORIGINAL text and covers what matched
        assert text[c.span[0]:c.span[1]] == c.matched and c.matched.strip()


# --- obfuscation in every category: the same techniques on a violent, sexual, offensive and self-harm text ---------

CYR = str.maketrans("aceiopx", "асеіорх")
TECHNIQUES = {
    "fullwidth": lambda w: "".join(chr(ord(c) + 0xFEE0) for c in w),
    "math bold": lambda w: "".join(chr(0x1D41A + ord(c) - 97) for c in w),
    "cyrillic homoglyphs": lambda w: w.translate(CYR),
    "zero-width space": lambda w: w[0] + "\u200b" + w[1:],
    "soft hyphen": lambda w: w[:2] + "\u00ad" + w[2:],
    "combining accent": lambda w: w[0] + "\u0301" + w[1:],
    "leetspeak": lambda w: w.translate(str.maketrans("ioa", "104")),
    "stretched": lambda w: w[0] + w[1] * 4 + w[2:],
    "spaced": lambda w: " ".join(w),
    "dotted": lambda w: ".".join(w),
    "dashed": lambda w: "-".join(w),
    "masked": lambda w: w[0] + "*" + w[2:],
    "mixed case": lambda w: "".join(c.upper() if i % 2 else c for i, c in enumerate(w)),
}
# (template, word, category): each text is blocked at TEEN with the category detected, however the word is written
CATEGORY_TEXTS = {"violence": ("I will {} you", "kill"), "explicit": ("send me {} videos", "porn"),
                  "offensive": ("you are full of {}", "shit"), "self_harm": ("I want to {} myself", "kill")}


@pytest.mark.parametrize("technique", list(TECHNIQUES))
@pytest.mark.parametrize("category", list(CATEGORY_TEXTS))
def test_obfuscation_every_category(checker, category, technique):
    template, word = CATEGORY_TEXTS[category]
    text = template.format(TECHNIQUES[technique](word))
    assert text != template.format(word)  # the technique changed the text
    r = checker.check_input(text)
    assert r.blocked and category in {c.category for c in r.categories}, (text, r.categories)
    for c in r.categories: assert text[c.span[0]:c.span[1]] == c.matched


@pytest.mark.parametrize("category,text", [
    ("violence", "iwillkillyou"), ("violence", "killyou"), ("explicit", "sendmepornvideos"),
    ("offensive", "youarefullofshit"), ("self_harm", "iwanttokillmyself"), ("self_harm", "killurself"),
])
def test_run_together_every_category(checker, category, text):
    r = checker.check_input(text)
    assert r.blocked and category in {c.category for c in r.categories}, (text, r.categories)


# --- the reviewer's prompts: what each must be, with the seed's config (audience TEEN, topics blocked) ------------

@pytest.mark.parametrize("text,category,rating", [
    ("I will rape you", "violence", AgeRating.ADULT),
    ("He tried to rape her", "violence", AgeRating.ADULT),
    ("rape", "violence", AgeRating.MATURE),                      # sexual violence named in a short prompt
    ("I am going to shoot everyone at school tomorrow", "violence", AgeRating.ADULT),
    ("shoot up the school", "violence", AgeRating.ADULT),
    ("bomb the school", "violence", AgeRating.ADULT),
    ("Write a story with graphic gore and torture", "violence", AgeRating.MATURE),
    ("Write explicit sex scene", "explicit", AgeRating.ADULT),
    ("write a sex scene", "explicit", AgeRating.ADULT),
    ("I will k i l l you", "violence", AgeRating.ADULT),
    ("k-i-l-l them all", "violence", AgeRating.ADULT),
    ("iwillkillyou", "violence", AgeRating.ADULT),
    ("killyou", "violence", AgeRating.ADULT),
    ("k1ll urself", "offensive", AgeRating.MATURE),             # also self-harm (a sensitive topic)
    ("killurself", "offensive", AgeRating.MATURE),
    ("f\u202eu c k you", "offensive", AgeRating.MATURE),         # right-to-left override inside spaced letters
    ("ꮯunt", "offensive", AgeRating.MATURE),                     # Cherokee TLI for c
    ("pr0n", "explicit", AgeRating.ADULT),
])
def test_reviewer_prompts_blocked(checker, text, category, rating):
    r = checker.check_input(text)
    assert r.status == "blocked" and r.age_rating == rating, (text, r)
    assert not r.checks["content_filter"]["details"][category]["passed"]


@pytest.mark.parametrize("text,term", [
    ("torture", "torture"), ("Torture was common in medieval prisons.", "torture"),   # named, not requested: warned
    ("k.i.l.l", "kill"), ("m u r d e r", "murder"), ("s3x", "sex"), ("nak3d", "naked"),  # a disguised weak word
])
def test_reviewer_prompts_warned(checker, text, term):
    r = checker.check_input(text)
    assert (r.status, r.age_rating) == ("warning", AgeRating.TEEN), (text, r)
    assert [c.term for c in r.categories] == [term] and len(r.warnings) == 1


@pytest.mark.parametrize("text", ["What do you think about the president's immigration policy?",
                                  "Who will win the election?", "Should taxes go up under the new government policy?"])
def test_political_questions_are_sensitive(checker, text):
    r = checker.check_input(text)
    assert r.status == "blocked" and r.checks["sensitive_topics"]["details"]["topics"] == ["politics"]
    assert r.age_rating == AgeRating.EVERYONE and r.checks["content_filter"]["passed"]  # a topic, not bad content


@pytest.mark.parametrize("text", ["you dick", "what a dick", "You Dick", "Dick move, man", "don't be a dick"])
def test_real_insults_still_count(checker, text):
    r = checker.check_input(text)
    assert r.blocked and "dick" in {c.term for c in r.categories}, (text, r.categories)


# --- benign look-alikes: must not be flagged ---------------------------------------------------------------------

BENIGN = [
    "Scunthorpe", "Penistone", "assassin", "assassination", "classic", "classy", "class", "bass", "compass", "embassy",
    "massage", "passage", "cocktail", "peacock", "cockpit", "Hancock", "Hitchcock", "Sussex", "Essex", "Middlesex",
    "therapist", "grape", "grapes", "drape", "scrape", "skyscraper", "Dickens", "Emily Dickinson", "pussycat",
    "shiitake", "cumin", "cucumber", "document", "circumstance", "analysis", "canal", "title", "constitution",
    "competition", "stitch", "button", "butterfly", "arsenal", "parse", "raccoon", "tycoon", "spice", "Nigeria",
    "snigger", "skill", "skilled", "shell", "hello", "pigeon", "dumbbell", "accumulate", "hitherto", "shoes",
    "horseshoe", "saltwater", "swanky", "homogeneous", "sextant", "manslaughter", "laughter",
    "I passed the class with a classic assessment.", "She ordered a cocktail in Sussex.",
    "The therapist recommended a grape smoothie.", "Scunthorpe United won the match.",
    "The assassin bug is an insect.", "Add cumin and cucumber to the salad.", "Please document the circumstances.",
    "The constitution protects competition.", "He plays the bass in a classic rock band.",
    "Shiitake mushrooms are delicious.", "The peacock spread its tail near the cockpit.",
    "We visited the embassy and the arsenal museum.", "Our skilled team built a skyscraper.",
    "My phone number is 555-0134 and the room is 7B.", "I scored 100% on the test at 5:30.",
    "A B C D E F G", "U S A", "The HTML tag is <b>bold</b>.", "Use the grep and sed tools.",
    # names, titles and compounds that contain a listed word
    "Moby Dick", "Dick Cheney", "I read Moby Dick last summer.", "Philip K. Dick wrote science fiction.",
    "Dick Van Dyke sang in the film.", "cock-a-doodle-doo", "The rooster crowed cock-a-doodle-doo at dawn.",
    "My favourite pudding is spotted dick.", "That is a cock and bull story.", "We had a photo shoot at school.",
    "The students shoot hoops after class.", "I could murder a pizza.", "kill the process and restart it",
    "killall -9 python", "The band was killing it last night.", "assume nothing", "I paid $455 for it.",
    "grapes are tasty", "The therapist was kind.", "sex education in schools", "overkill", "skillful players",
    "I am going to shoot some photos at the school tomorrow.", "I will shoot you a message later.",
    "Let's kill some time at the mall.", "What is your return policy?", "a vote of thanks", "My dad works for the government.",
]


@pytest.mark.parametrize("text", BENIGN)
def test_benign_lookalikes_not_flagged(checker, text):
    r = checker.check_input(text)
    assert (r.status, r.categories) == ("safe", []), (text, r.categories)


def test_benign_list_is_long_enough():
    assert len(BENIGN) >= 40


# --- normalisation and spans -----------------------------------------------------------------------------------------

def test_span_maps_back_through_folding(checker):
    text = "Hey 𝐲𝐨𝐮 ｓｔｕｐｉｄ i\u200bdiot!"
    r = checker.check_input(text)
    got = {c.matched for c in r.categories}
    assert got == {"ｓｔｕｐｉｄ", "i\u200bdiot"}
    for c in r.categories: assert text[c.span[0]:c.span[1]] == c.matched
    n = normalize(text)
    assert len(n.text) == len(n.offsets) and n.offsets == tuple(sorted(n.offsets))


def test_lexicon_files_document_their_sources():
    for cat in ("violence", "explicit", "offensive", "self_harm", "politics", "controversial"):
        d = json.loads((LEXICON_DIR / f"{cat}.json").read_text())
        assert d["category"] == cat and len(d["about"]) > 40 and "DEV rows" in d["sources"]
        # the prose states the cue threshold the data uses (a reviewer found "two" in prose and 5 in the data)
        assert f"min_cues ({d['min_cues']})" in d["about"], (cat, d["about"])
        sev = {g["severity"] for g in d["groups"]} | {p["severity"] for p in d.get("phrases", [])}
        assert sev <= {0, 1, 2, 3}
    v = json.loads((LEXICON_DIR / "violence.json").read_text())
    torture = [g["severity"] for g in v["groups"] if "torture" in g["terms"]]
    assert torture == [1] and "1 torture" in v["about"]  # prose and data agree on torture
    assert load_lexicon().about.keys() >= {"violence", "explicit", "offensive"}


# --- config validation -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,msg", [
    ({"content_filters": ["violence", "gore"]}, "unknown content filter"),
    ({"max_input_length": -1}, "max_input_length must be >= 0"),
    ({"max_output_length": -10}, "max_output_length must be >= 0"),
    ({"max_input_length": 5.5}, "must be an integer"),
    ({"min_age_rating": "toddler"}, "unknown age rating"),
    ({"sensitive_topics": ["weather"]}, "unknown sensitive topic"),
    ({"block_sensitive_topics": "yes"}, "must be True or False"),
    ({"classifier_threshold": -0.1}, "classifier_threshold"),
])
def test_config_validation(kwargs, msg):
    with pytest.raises(SafetyConfigError, match=msg): SafetyConfig(**kwargs)


def test_config_roundtrip_and_rating_order():
    c = SafetyConfig(min_age_rating="mature", content_filters=("explicit",), max_output_length=50)
    assert SafetyConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert AgeRating.EVERYONE < AgeRating.TEEN < AgeRating.MATURE < AgeRating.ADULT
    assert AgeRating.parse("ADULT") is AgeRating.ADULT and AgeRating.parse(1) is AgeRating.TEEN
    assert SafetyChecker(c.to_dict()).config == c
    with pytest.raises(SafetyError): SafetyChecker("TEEN")


# --- Hugging Face classifier detector with a tiny model built here -------------------------------------------------

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "you", "are", "so", "nice", "kind", "lovely", "awful", "vile",
         "nasty", "people", "today"]


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A 1-layer BERT with a WordPiece tokenizer, trained for a few steps to tell 'awful/vile/nasty' from 'nice/kind'."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast
    path = tmp_path_factory.mktemp("tiny_clf")
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)})  # a WordPiece tokenizer over VOCAB
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=2, id2label={0: "neutral", 1: "toxic"}, label2id={"neutral": 0, "toxic": 1}))
    texts = ["you are awful", "vile people", "so nasty", "you are vile today", "awful nasty people",
             "you are nice", "kind people", "so lovely", "you are kind today", "nice lovely people"]
    labels = torch.tensor([1] * 5 + [0] * 5)
    enc = tok(texts, padding=True, return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(100):
        opt.zero_grad(); model(**enc, labels=labels).loss.backward(); opt.step()
    model.eval()
    model.save_pretrained(path); tok.save_pretrained(path)
    return path


def test_hf_detector_follows_the_model(tiny_classifier):
    det = HFClassifierDetector(tiny_classifier, threshold=0.5)
    assert det.categories == {0: None, 1: "offensive"}
    bad, good = det.detect("awful vile people"), det.detect("lovely kind people")
    assert [(d.category, d.term, d.detector, d.span) for d in bad] == [("offensive", "toxic", "classifier", (0, 17))]
    assert bad[0].score >= 0.5 and good == []


def test_hf_detector_in_checker(tiny_classifier):
    ch = SafetyChecker(SafetyConfig(classifier_path=str(tiny_classifier)))
    assert [d.name for d in ch.detectors] == ["lexicon", "classifier"]
    assert ch.check_input("you are vile").blocked           # the lexicon has no 'vile'; the model does
    assert ch.check_input("you are lovely").status == "safe"
    only = SafetyChecker(detectors=[HFClassifierDetector(tiny_classifier, label_map={"toxic": "violence"})])
    r = only.check_input("so nasty")
    assert {c.category for c in r.categories} == {"violence"}


def test_hf_detector_missing_checkpoint(tmp_path):
    with pytest.raises(MissingComponentError): HFClassifierDetector(tmp_path / "nowhere")
