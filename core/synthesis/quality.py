"""The quality gate a candidate passes before it may join: cheap signals of the proxy, and the
answer's own arithmetic.

A garbage row is "novel" in gradient space, so the sparse-cluster filter alone rewards noise.
Each well-formed candidate is therefore checked, in this order (the first problem is recorded):

1. its response loss (computed by the proxy with its features: no extra pass) lies inside the
   band of the source data's losses, its ``LOSS_PERCENTILES`` (5th to 95th) percentiles: far
   below is a copy or a trivial reply, far above is text the proxy finds incoherent;
2. where the source's answers are checkable (at least ``CHECKABLE_SHARE`` of the source
   responses end in a GSM8K-style ``#### N`` line), the candidate's answer is self-consistent
   (``answer_problem``): it has one ``#### N`` line, every calculator annotation
   ``<<a op b=c>>`` and every stand-alone equation ``a op b = c`` of its working computes
   (a safe parser over ``ast``, never ``eval``), and ``N`` is the result of its last computed
   line or a number of its working.

``RULE`` states this for people (the round table and the README show it). Functions here are
pure: texts and arrays in, verdicts out.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import PrismError
from core.validate import check_number

LOSS_PERCENTILES = (5.0, 95.0)
CHECKABLE_SHARE = 0.9
RULE = (
    "the response loss lies within the source data's 5th–95th percentile band of losses; where "
    "the source's answers are checkable (a '#### N' final line), the answer has that line, "
    "every calculation of its working is right, and N follows from the working"
)

_NUMBER = r"(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_FINAL = re.compile(r"^[ \t]*####[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_ANSWER = re.compile(r"^\$?\s*(-?" + _NUMBER + r")\s*[.%]?$")
_OPERATOR = r"(?:[-+*/×÷–]|\s+x\s+)"
_EQUATION = re.compile(
    r"("
    + _NUMBER
    + r"(?:\s*"
    + _OPERATOR
    + r"\s*\$?"
    + _NUMBER
    + r")+)\s*=\s*\$?\s*(-?"
    + _NUMBER
    + r")"
)
_IN_TEXT = re.compile(r"-?" + _NUMBER)
_SPACED = re.compile(r"(?<=\d) (?=\d{3}\b)")  # "400 000": a space between thousands
_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]
_WORD = re.compile(r"\b(" + "|".join(_WORDS) + r")\b", re.IGNORECASE)
_OPERATIONS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_JOINS = "+-*/×÷–x(=)"  # a character before an equation that makes it part of a longer one


def arithmetic(expression: str) -> float:
    """The value of an arithmetic expression: numbers (``1,200``, ``$5``, ``20%``), + - * / ×
    ÷, parentheses and signs. Anything else raises ``ValueError``; nothing is executed."""
    text = expression.replace(",", "").replace("$", "").replace("×", "*").replace("÷", "/")
    text = re.sub(r"\s+x\s+", "*", text.replace("–", "-"))
    text = re.sub(r"(\d+(?:\.\d*)?|\.\d+)\s*%", r"(\1/100)", text)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"not arithmetic: {expression!r}") from None
    return _value(tree.body)


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ValueError("not arithmetic: a truth value")
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _value(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATIONS:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ValueError("division by zero")
        return _OPERATIONS[type(node.op)](left, right)
    raise ValueError(f"not arithmetic: {ast.dump(node)}")


def _agrees(value: float, stated: str) -> bool:
    """Whether ``value`` is the number ``stated``, up to the digits it shows (rounded or cut)."""
    try:
        claim = arithmetic(stated)
    except ValueError:
        return False
    if math.isclose(value, claim, rel_tol=1e-6, abs_tol=1e-9):
        return True
    digits = stated.replace(",", "").partition(".")[2]
    places = len(digits) if digits.isdigit() else 0
    return abs(value - claim) < 10.0**-places and (places > 0 or abs(value - claim) < 0.5)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _equations(working: str) -> list[tuple[str, str, int]]:
    """Stand-alone equations ``a op b = c`` of prose (expression, result, end): those not part
    of a longer expression (a sign, an operator, a variable or a unit next to them)."""
    found = []
    for match in _EQUATION.finditer(working):
        before = working[: match.start()].rstrip()
        after = working[match.end() :].lstrip()
        if before and (before[-1] in _JOINS or before[-1].isdigit()):
            continue
        touching = working[match.start() - 1 : match.start()]
        if touching and (touching.isalnum() or touching in ".,/:"):
            continue
        if after[:1] and (after[0] in _JOINS or after[0].isdigit() or after[0] in "%/"):
            continue
        if after[:2] and after[0] in ".," and after[1:2].isdigit():
            continue
        found.append((match.group(1), match.group(2), match.end()))
    return found


def final_answer(response: str) -> str | None:
    """The text of the response's last ``#### …`` line, None without one."""
    lines = _FINAL.findall(response)
    return lines[-1] if lines else None


def answer_problem(response: str) -> str:
    """Why a GSM8K-style answer is not self-consistent ("" when it is)."""
    stated = final_answer(response)
    if stated is None:
        return "no '#### N' final answer line"
    match = _ANSWER.match(stated)
    if match is None:
        return f"the final answer {stated[:40]!r} is not a number"
    answer = _number(match.group(1))
    working = response[: response.rfind("####")]
    results: list[tuple[int, float]] = []  # (end position, value) of each computed line
    for found in _ANNOTATION.finditer(working):
        expression, stated_result = found.group(1), found.group(2).strip()
        try:
            value = arithmetic(expression)
        except ValueError:
            return f"the calculation <<{expression}={stated_result}>> cannot be read"
        if not _agrees(value, stated_result):
            return f"the calculation {expression} = {stated_result} is wrong (it is {value:g})"
        results.append((found.end(), value))
    prose = _ANNOTATION.sub(lambda m: " " * len(m.group(0)), working)
    for expression, stated_result, end in _equations(prose):
        try:
            value = arithmetic(expression)
        except ValueError:
            continue
        if not _agrees(value, stated_result):
            return f"the calculation {expression} = {stated_result} is wrong (it is {value:g})"
        results.append((end, value))
    digits = _SPACED.sub("", prose.replace("$", ""))
    numbers = [_number(n) for n in _IN_TEXT.findall(digits)]
    numbers += [float(_WORDS.index(w.lower())) for w in _WORD.findall(prose)]
    last = [max(results)[1]] if results else []
    values = [*last, *numbers]
    if not any(
        math.isclose(answer, v, rel_tol=1e-6, abs_tol=1e-9)
        or math.isclose(answer, 100 * v, rel_tol=1e-6)  # an amount of money given in cents
        for v in values
    ):
        return f"the final answer {match.group(1)} follows from no line of the working" + (
            f" (its last calculation gives {last[0]:g})" if last else ""
        )
    return ""


def checkable(source_responses: Sequence[str]) -> bool:
    """Whether the source's answers can be checked: at least ``CHECKABLE_SHARE`` of them end in
    a ``#### N`` line."""
    texts = [t for t in source_responses if isinstance(t, str) and t.strip()]
    if not texts:
        return False
    with_line = sum(final_answer(t) is not None for t in texts)
    return with_line >= CHECKABLE_SHARE * len(texts)


def loss_band(
    source_losses: np.ndarray, *, percentiles: tuple[float, float] = LOSS_PERCENTILES
) -> tuple[float, float] | None:
    """The (low, high) percentiles of the source's finite losses; None without any."""
    low, high = percentiles
    check_number(low, param="percentiles", minimum=0, maximum=100)
    check_number(high, param="percentiles", minimum=low, maximum=100)
    losses = np.asarray(source_losses, dtype=np.float64)
    losses = losses[np.isfinite(losses)]
    if not losses.size:
        return None
    lo, hi = np.percentile(losses, [low, high])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Quality:
    """Per candidate (M,): ``problem`` ("" = passes, else why it is low quality), with the
    ``band`` of losses used (None: no source losses) and whether answers were ``checked``."""

    problem: np.ndarray
    band: tuple[float, float] | None
    checked: bool

    @property
    def passed(self) -> np.ndarray:
        return self.problem == ""


def assess(
    responses: Sequence[str | None],
    losses: np.ndarray,
    *,
    source_losses: np.ndarray,
    source_responses: Sequence[str],
    percentiles: tuple[float, float] = LOSS_PERCENTILES,
) -> Quality:
    """Gate M candidates: ``responses`` (M; None = malformed, never judged here) and their
    response ``losses`` (M,) against the source rows' ``source_losses`` and responses."""
    if len(losses) != len(responses):
        raise PrismError(
            f"losses has {len(losses)} values for {len(responses)} candidates.", param="losses"
        )
    band = loss_band(source_losses, percentiles=percentiles)
    checked = checkable(source_responses)
    problem = np.array([""] * len(responses), dtype=object)
    for i, (response, loss) in enumerate(zip(responses, np.asarray(losses), strict=True)):
        if response is None:
            continue
        if band is not None and not band[0] <= float(loss) <= band[1]:
            side = "below" if float(loss) < band[0] else "above"
            problem[i] = (
                f"response loss {float(loss):.3f} is {side} the source band "
                f"{band[0]:.3f}–{band[1]:.3f} (percentiles {percentiles[0]:g}–{percentiles[1]:g})"
            )
        elif checked:
            problem[i] = answer_problem(response)
    return Quality(problem=problem, band=band, checked=checked)
