"""A small problem set written for this project (not taken from HumanEval or MBPP).

Each problem has a prompt (signature and docstring), a canonical completion, a plausible broken
completion, and tests as ``(arguments, expected)`` literal pairs. From that one definition it can
be posed in all four test forms, so the correctness tests, the adversarial suite and the benchmark
exercise every form on the same ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import (
    AssertTests,
    ExecuteRequest,
    HumanEvalTests,
    LimitsRequest,
    MbppTests,
    StdioCase,
    StdioTests,
)


@dataclass(frozen=True)
class Problem:
    name: str
    prompt: str
    canonical: str
    broken: str
    tests: tuple[tuple[str, str], ...]

    def program(self, broken: bool = False) -> str:
        return self.prompt + (self.broken if broken else self.canonical)

    def humaneval(self, broken: bool = False, limits: LimitsRequest | None = None) -> ExecuteRequest:
        lines = ["def check(candidate):"] + [f"    assert candidate({a}) == {e}" for a, e in self.tests]
        return ExecuteRequest(HumanEvalTests(self.prompt, self.broken if broken else self.canonical,
                                             "\n".join(lines) + "\n", self.name), limits=limits)

    def asserts(self, broken: bool = False, limits: LimitsRequest | None = None) -> ExecuteRequest:
        calls = tuple(f"assert {self.name}({a}) == {e}" for a, e in self.tests)
        return ExecuteRequest(AssertTests(self.program(broken), calls), limits=limits)

    def mbpp(self, broken: bool = False, limits: LimitsRequest | None = None) -> ExecuteRequest:
        # The setup binds the function under a second name, as MBPP setups bind helpers.
        calls = tuple(f"assert candidate({a}) == {e}" for a, e in self.tests)
        return ExecuteRequest(MbppTests(self.program(broken), calls, f"candidate = {self.name}\n"), limits=limits)

    def stdio(self, broken: bool = False, limits: LimitsRequest | None = None) -> ExecuteRequest:
        driver = (f"\nimport ast, sys\nargs = ast.literal_eval('(' + sys.stdin.read() + ',)')\n"
                  f"print(repr({self.name}(*args)))\n")
        cases = tuple(StdioCase(a, repr(_literal(e)) + "\n") for a, e in self.tests)
        return ExecuteRequest(StdioTests(self.program(broken) + driver, cases), limits=limits)

    def request(self, form: str, broken: bool = False, limits: LimitsRequest | None = None) -> ExecuteRequest:
        return getattr(self, form)(broken, limits)


FORMS = ("humaneval", "mbpp", "asserts", "stdio")


def _literal(src: str):
    import ast

    return ast.literal_eval(src)


def _p(name, signature, doc, canonical, broken, tests) -> Problem:
    prompt = f"def {name}({signature}):\n    \"\"\"{doc}\"\"\"\n"
    return Problem(name, prompt, canonical, broken, tuple(tests))


PROBLEMS: tuple[Problem, ...] = (
    _p("add_two", "a, b", "Sum of two numbers.", "    return a + b\n", "    return a - b\n",
       [("1, 2", "3"), ("-4, 4", "0"), ("2.5, 0.5", "3.0")]),
    _p("is_palindrome", "s", "True when s reads the same backwards.", "    return s == s[::-1]\n",
       "    return not s or s[0] == s[-1]\n", [("'abba'", "True"), ("'abca'", "False"), ("''", "True")]),
    _p("count_vowels", "s", "Number of vowels (aeiou, any case).",
       "    return sum(1 for c in s.lower() if c in 'aeiou')\n",
       "    return sum(1 for c in s if c in 'aeiou')\n", [("'Hello'", "2"), ("'AEIOU'", "5"), ("'xyz'", "0")]),
    _p("fizz", "n", "'FizzBuzz' for multiples of 15, 'Fizz' of 3, 'Buzz' of 5, else str(n).",
       "    if n % 15 == 0:\n        return 'FizzBuzz'\n    if n % 3 == 0:\n        return 'Fizz'\n"
       "    if n % 5 == 0:\n        return 'Buzz'\n    return str(n)\n",
       "    if n % 3 == 0:\n        return 'Fizz'\n    if n % 5 == 0:\n        return 'Buzz'\n    return str(n)\n",
       [("9", "'Fizz'"), ("10", "'Buzz'"), ("30", "'FizzBuzz'"), ("7", "'7'")]),
    _p("running_max", "xs", "The maximum of each prefix of xs.",
       "    out, best = [], None\n    for x in xs:\n        best = x if best is None or x > best else best\n"
       "        out.append(best)\n    return out\n", "    return sorted(xs)\n",
       [("[3, 1, 4, 1, 5]", "[3, 3, 4, 4, 5]"), ("[]", "[]"), ("[2, 2]", "[2, 2]")]),
    _p("second_largest", "xs", "The second largest distinct value.", "    return sorted(set(xs))[-2]\n",
       "    return sorted(xs)[-2]\n", [("[1, 5, 3]", "3"), ("[7, 7, 2]", "2"), ("[-1, -2]", "-2")]),
    _p("word_lengths", "s", "Lengths of the whitespace-separated words of s.",
       "    return [len(w) for w in s.split()]\n", "    return [len(w) for w in s.split(' ')]\n",
       [("'a bb ccc'", "[1, 2, 3]"), ("'  hi  there '", "[2, 5]"), ("''", "[]")]),
    _p("gcd", "a, b", "Greatest common divisor of two non-negative integers.",
       "    while b:\n        a, b = b, a % b\n    return a\n", "    return min(a, b)\n",
       [("12, 18", "6"), ("7, 3", "1"), ("0, 5", "5")]),
    _p("flatten", "nested", "Concatenate a list of lists.", "    return [x for part in nested for x in part]\n",
       "    return list(nested)\n", [("[[1], [2, 3]]", "[1, 2, 3]"), ("[]", "[]"), ("[[], [4]]", "[4]")]),
    _p("rotate_left", "xs, k", "Rotate xs left by k places (k may exceed len(xs)).",
       "    if not xs:\n        return []\n    k %= len(xs)\n    return xs[k:] + xs[:k]\n",
       "    return xs[k:] + xs[:k]\n", [("[1, 2, 3], 1", "[2, 3, 1]"), ("[1, 2, 3], 4", "[2, 3, 1]"), ("[], 3", "[]")]),
    _p("char_histogram", "s", "Count of each character of s.",
       "    out = {}\n    for c in s:\n        out[c] = out.get(c, 0) + 1\n    return out\n",
       "    return {c: 1 for c in s}\n", [("'aab'", "{'a': 2, 'b': 1}"), ("''", "{}"), ("'xyz'", "{'x': 1, 'y': 1, 'z': 1}")]),
    _p("is_prime", "n", "True when n is a prime number.",
       "    if n < 2:\n        return False\n    i = 2\n    while i * i <= n:\n        if n % i == 0:\n"
       "            return False\n        i += 1\n    return True\n", "    return n % 2 == 1\n",
       [("2", "True"), ("9", "False"), ("13", "True"), ("1", "False")]),
    _p("merge_sorted", "a, b", "Merge two sorted lists into one sorted list.",
       "    out, i, j = [], 0, 0\n    while i < len(a) and j < len(b):\n        if a[i] <= b[j]:\n"
       "            out.append(a[i])\n            i += 1\n        else:\n            out.append(b[j])\n"
       "            j += 1\n    return out + a[i:] + b[j:]\n", "    return a + b\n",
       [("[1, 4], [2, 3]", "[1, 2, 3, 4]"), ("[], [1]", "[1]"), ("[5], []", "[5]")]),
    _p("run_length", "s", "Run-length encoding: 'aaab' -> 'a3b1'.",
       "    out, i = [], 0\n    while i < len(s):\n        j = i\n        while j < len(s) and s[j] == s[i]:\n"
       "            j += 1\n        out.append(s[i] + str(j - i))\n        i = j\n    return ''.join(out)\n",
       "    out, prev, n = [], None, 0\n    for c in s:\n        if c == prev:\n            n += 1\n"
       "        else:\n            if prev:\n                out.append(prev + str(n))\n            prev, n = c, 1\n"
       "    return ''.join(out)\n", [("'aaab'", "'a3b1'"), ("''", "''"), ("'xy'", "'x1y1'")]),
    _p("title_words", "s", "Capitalize the first letter of every word, lowercase the rest.",
       "    return ' '.join(w[:1].upper() + w[1:].lower() for w in s.split(' '))\n",
       "    return s.capitalize()\n", [("'hello world'", "'Hello World'"), ("'a'", "'A'"), ("'mIxEd cAsE'", "'Mixed Case'")]),
    _p("digit_sum", "n", "Sum of the decimal digits of an integer (sign ignored).",
       "    return sum(int(d) for d in str(abs(n)))\n", "    return sum(int(d) for d in str(n) if d != '0')\n",
       [("123", "6"), ("-45", "9"), ("0", "0")]),
    _p("pairwise_diffs", "xs", "Differences between consecutive elements.",
       "    return [b - a for a, b in zip(xs, xs[1:])]\n", "    return [xs[i + 1] - xs[i] for i in range(len(xs) - 2)]\n",
       [("[1, 4, 9]", "[3, 5]"), ("[5]", "[]"), ("[2, 2, 2, 3]", "[0, 0, 1]")]),
    _p("unique_in_order", "xs", "Drop consecutive duplicates, keeping order.",
       "    out = []\n    for x in xs:\n        if not out or out[-1] != x:\n            out.append(x)\n    return out\n",
       "    return sorted(set(xs))\n", [("[3, 3, 1, 1, 3]", "[3, 1, 3]"), ("[]", "[]"), ("[2, 1]", "[2, 1]")]),
    _p("binary_string", "n", "The binary digits of a non-negative integer.", "    return bin(n)[2:]\n",
       "    return bin(n)\n", [("5", "'101'"), ("0", "'0'"), ("8", "'1000'")]),
    _p("average", "xs", "Arithmetic mean as a float; 0.0 for an empty list.",
       "    return sum(xs) / len(xs) if xs else 0.0\n", "    return sum(xs) // len(xs) if xs else 0\n",
       [("[1, 2]", "1.5"), ("[]", "0.0"), ("[4]", "4.0")]),
    _p("transpose", "rows", "Transpose a rectangular matrix given as a list of rows.",
       "    return [list(col) for col in zip(*rows)]\n", "    return [list(r) for r in rows]\n",
       [("[[1, 2], [3, 4]]", "[[1, 3], [2, 4]]"), ("[[1, 2, 3]]", "[[1], [2], [3]]"), ("[]", "[]")]),
    _p("longest_word", "s", "The first longest word of s ('' for no words).",
       "    best = ''\n    for w in s.split():\n        if len(w) > len(best):\n            best = w\n    return best\n",
       "    best = ''\n    for w in s.split():\n        if len(w) >= len(best):\n            best = w\n    return best\n",
       [("'ab cd e'", "'ab'"), ("''", "''"), ("'hi there you'", "'there'")]),
    _p("count_inversions", "xs", "Number of pairs i < j with xs[i] > xs[j].",
       "    return sum(1 for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[i] > xs[j])\n",
       "    return sum(1 for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[i] >= xs[j])\n",
       [("[2, 1, 3]", "1"), ("[1, 1]", "0"), ("[3, 2, 1]", "3")]),
    _p("to_fahrenheit", "c", "Celsius to Fahrenheit, rounded to one decimal.",
       "    return round(c * 9 / 5 + 32, 1)\n", "    return round(c * 9 / 5, 1)\n",
       [("0", "32.0"), ("100", "212.0"), ("-40", "-40.0")]),
    _p("balanced", "s", "True when the brackets ()[]{} in s are balanced and properly nested.",
       "    pairs, stack = {')': '(', ']': '[', '}': '{'}, []\n    for c in s:\n        if c in '([{':\n"
       "            stack.append(c)\n        elif c in pairs:\n            if not stack or stack.pop() != pairs[c]:\n"
       "                return False\n    return not stack\n",
       "    return all(s.count(a) == s.count(b) for a, b in ('()', '[]', '{}'))\n",
       [("'([]{})'", "True"), ("'([)]'", "False"), ("'(('", "False")]),
)
