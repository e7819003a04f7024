"""Recursive-descent parser for AWS IoT SQL (reference/aws-iot/iot-sql-*.md).

Binary operators are parsed by precedence climbing from one table; prefix forms dispatch
through ``_PREFIX``. Errors carry the line and column of the token at fault.
"""

from __future__ import annotations

from decimal import Decimal

from emulator.sql import ast
from emulator.sql.errors import RuleSyntaxError
from emulator.sql.lexer import Kind, Token, tokenize

# Lower number binds looser.
_BINARY = {
    "OR": 1,
    "AND": 2,
    "=": 4,
    "<>": 4,
    "!=": 4,
    "<": 4,
    ">": 4,
    "<=": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
}
_KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "AS",
    "AND",
    "OR",
    "NOT",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "VALUE",
    "TRUE",
    "FALSE",
    "NULL",
}


MAX_VARIABLES = 10  # aws-iot-current.md, SET clause limits
MAX_VARIABLE_NAME = 64


class Parser:
    """``variables``: the names a ``@name`` may refer to. A statement starts with none and
    its SET clause adds them in order; None accepts any name (a substitution template is
    parsed on its own, apart from the statement whose SET defines them)."""

    def __init__(self, sql: str, variables: set[str] | None = None) -> None:
        self.sql = sql
        self.tokens = tokenize(sql)
        self.i = 0
        self.variables = variables

    # -- token helpers ---------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, token: Token | None = None) -> RuleSyntaxError:
        t = token or self.tok
        return RuleSyntaxError(message, self.sql, t.line, t.column)

    def advance(self) -> Token:
        t = self.tokens[self.i]
        if t.kind is not Kind.EOF:
            self.i += 1
        return t

    def is_kw(self, word: str) -> bool:
        t = self.tok
        return t.kind is Kind.IDENT and t.text.upper() == word

    def accept_kw(self, word: str) -> bool:
        if self.is_kw(word):
            self.advance()
            return True
        return False

    def expect_kw(self, word: str) -> Token:
        if not self.is_kw(word):
            raise self.error(f"expected {word}, found {self.describe()}")
        return self.advance()

    def is_op(self, op: str) -> bool:
        t = self.tok
        return t.kind is Kind.OP and t.text == op

    def accept_op(self, op: str) -> bool:
        if self.is_op(op):
            self.advance()
            return True
        return False

    def expect_op(self, op: str) -> Token:
        if not self.is_op(op):
            raise self.error(f"expected '{op}', found {self.describe()}")
        return self.advance()

    def describe(self) -> str:
        t = self.tok
        if t.kind is Kind.EOF:
            return "end of statement"
        return f"'{t.text}'" if t.kind is not Kind.STRING else f"string '{t.text}'"

    # -- statements ------------------------------------------------------------------
    def parse_statement(self) -> ast.Select:
        self.variables = set()  # a statement's variables are the ones its SET defines
        assignments = self.parse_set() if self.is_kw("SET") else ()
        select = self.parse_select(top_level=True, assignments=assignments)
        if self.tok.kind is not Kind.EOF:
            raise self.error(f"unexpected {self.describe()} after the statement")
        return select

    def parse_set(self) -> tuple[ast.Assignment, ...]:
        """``SET @a = expr [, @b = expr]``: before SELECT, once; each name assigned once
        and usable after its own assignment (aws-iot-current.md, SET clause)."""
        self.advance()
        defined: set[str] = set()
        self.variables = defined
        out: list[ast.Assignment] = []
        while True:
            t = self.tok
            if t.kind is not Kind.VARIABLE:
                raise self.error(f"expected a variable such as @name, found {self.describe()}")
            if len(t.text) - 1 > MAX_VARIABLE_NAME:
                raise self.error(f"variable name longer than {MAX_VARIABLE_NAME} characters")
            if t.text in defined:
                raise self.error(f"variable {t.text} is assigned twice (variables are immutable)")
            if len(defined) == MAX_VARIABLES:
                raise self.error(f"more than {MAX_VARIABLES} variables in SET")
            self.advance()
            self.expect_op("=")
            out.append(ast.Assignment(t.pos, t.text, self.parse_expr()))
            defined.add(t.text)
            if not self.accept_op(","):
                break
        if self.is_kw("SET"):
            raise self.error("SET may be used only once per statement")
        return tuple(out)

    def parse_select(
        self, top_level: bool, assignments: tuple[ast.Assignment, ...] = ()
    ) -> ast.Select:
        start = self.expect_kw("SELECT")
        value = self.accept_kw("VALUE")
        items: list[ast.SelectItem] = []
        while True:
            items.append(self.parse_select_item(value))
            if not self.accept_op(","):
                break
            if self.is_kw("FROM") or (
                top_level and (self.is_kw("WHERE") or self.tok.kind is Kind.EOF)
            ):
                break  # a comma after the last item: AWS's DynamoDB tutorial writes one
        if value and len(items) != 1:
            raise self.error("SELECT VALUE takes exactly one expression", start)
        source: ast.Node | str | None
        if top_level:
            # FROM is optional for a rule only Basic Ingest triggers (iot-sql-reference.md)
            if self.accept_kw("FROM"):
                t = self.tok
                if t.kind is not Kind.STRING:
                    raise self.error("expected the topic filter as a quoted string after FROM")
                self.advance()
                source = t.text
            elif self.tok.kind is Kind.EOF or self.is_kw("WHERE"):
                source = None
            else:
                raise self.error(f"expected FROM, found {self.describe()}")
        else:
            self.expect_kw("FROM")
            source = self.parse_expr()
        where = self.parse_expr() if self.accept_kw("WHERE") else None
        return ast.Select(start.pos, value, tuple(items), source, where, assignments)

    def parse_select_item(self, value: bool) -> ast.SelectItem:
        t = self.tok
        if self.is_op("*") and not value:
            self.advance()
            expr: ast.Node = ast.Star(t.pos)  # SELECT * AS message: the DynamoDB pages' example
        else:
            expr = self.parse_expr()
        alias: tuple[str, ...] | None = None
        if self.accept_kw("AS"):
            if value:
                raise self.error("SELECT VALUE cannot have an alias")
            parts = [self.parse_name()]
            while self.accept_op("."):
                parts.append(self.parse_name())
            alias = tuple(parts)
        return ast.SelectItem(t.pos, expr, alias)

    def parse_name(self) -> str:
        t = self.tok
        if t.kind in (Kind.IDENT, Kind.STRING):  # AS 'name' is accepted by AWS
            self.advance()
            return t.text
        raise self.error(f"expected a name, found {self.describe()}")

    # -- expressions -----------------------------------------------------------------
    def parse_expr(self, min_prec: int = 1) -> ast.Node:
        if self.is_kw("NOT") and min_prec <= 3:
            t = self.advance()
            left: ast.Node = ast.Unary(t.pos, "NOT", self.parse_expr(3))
        else:
            left = self.parse_unary()
        while True:
            t = self.tok
            op = t.text.upper() if t.kind is Kind.IDENT else (t.text if t.kind is Kind.OP else "")
            prec = _BINARY.get(op)
            if prec is None or prec < min_prec:
                return left
            self.advance()
            right = self.parse_expr(prec + 1)
            left = ast.Binary(t.pos, "<>" if op == "!=" else op, left, right)

    def parse_unary(self) -> ast.Node:
        t = self.tok
        if self.is_op("-"):
            self.advance()
            operand = self.parse_unary()
            if isinstance(operand, ast.Literal) and type(operand.value) in (int, Decimal):
                return ast.Literal(t.pos, -operand.value)
            return ast.Unary(t.pos, "-", operand)
        if self.is_op("+"):
            self.advance()
            return self.parse_unary()
        if self.is_kw("NOT"):
            self.advance()
            return ast.Unary(t.pos, "NOT", self.parse_expr(3))
        return self.parse_postfix(self.parse_primary())

    def parse_postfix(self, node: ast.Node) -> ast.Node:
        while True:
            t = self.tok
            if self.accept_op("."):
                if self.is_op("*"):
                    self.advance()
                    node = ast.Member(t.pos, node, "*")
                else:
                    nt = self.tok
                    if nt.kind in (Kind.IDENT, Kind.INT):
                        self.advance()
                        node = ast.Member(t.pos, node, nt.text)
                    else:
                        raise self.error(
                            f"expected a field name after '.', found {self.describe()}"
                        )
            elif self.accept_op("["):
                index = self.parse_expr()
                self.expect_op("]")
                node = ast.Index(t.pos, node, index)
            else:
                return node

    def parse_primary(self) -> ast.Node:
        t = self.tok
        kind = t.kind
        if kind is Kind.INT:
            self.advance()
            return ast.Literal(t.pos, int(t.text))
        if kind is Kind.DECIMAL:
            self.advance()
            return ast.Literal(t.pos, Decimal(t.text))
        if kind is Kind.STRING:
            self.advance()
            return ast.Literal(t.pos, t.text)
        if kind is Kind.VARIABLE:
            if self.variables is not None and t.text not in self.variables:
                raise self.error(f"variable {t.text} is not set (SET {t.text} = ... before SELECT)")
            self.advance()
            return ast.Variable(t.pos, t.text)
        if kind is Kind.OP:
            if t.text == "(":
                self.advance()
                if self.is_kw("SELECT"):
                    node: ast.Node = self.parse_select(top_level=False)
                else:
                    node = self.parse_expr()
                self.expect_op(")")
                return node
            if t.text == "{":
                return self.parse_object()
            if t.text == "[":
                return self.parse_array()
            if t.text == "*":
                self.advance()
                return ast.Star(t.pos)
            raise self.error(f"unexpected {self.describe()}")
        if kind is Kind.IDENT:
            word = t.text.upper()
            if word == "TRUE" or word == "FALSE":
                self.advance()
                return ast.Literal(t.pos, word == "TRUE")
            if word == "NULL":
                self.advance()
                return ast.Literal(t.pos, None)
            if word == "CASE":
                return self.parse_case()
            if word == "SELECT":  # a nested query is an expression (iot-sql-nested-queries.md)
                return self.parse_select(top_level=False)
            if word in _KEYWORDS:
                raise self.error(f"unexpected keyword {t.text}")
            self.advance()
            if self.is_op("("):
                return self.parse_call(t)
            return ast.Field(t.pos, t.text)
        raise self.error(f"unexpected {self.describe()}")

    def parse_call(self, name: Token) -> ast.Node:
        self.expect_op("(")
        args: list[ast.Node] = []
        lower = name.text.lower()
        if not self.is_op(")"):
            while True:
                if lower == "cast" and args:
                    raise self.error("cast takes 'value AS type'")
                args.append(self.parse_expr())
                if lower == "cast":
                    self.expect_kw("AS")
                    type_tok = self.tok
                    if type_tok.kind not in (Kind.IDENT, Kind.STRING):
                        raise self.error("expected a type name after AS")
                    self.advance()
                    args.append(ast.Literal(type_tok.pos, type_tok.text))
                    break
                if not self.accept_op(","):
                    break
        self.expect_op(")")
        return ast.Call(name.pos, lower, tuple(args), name.text)

    def parse_case(self) -> ast.Node:
        start = self.advance()
        subject = None if self.is_kw("WHEN") else self.parse_expr()
        whens: list[tuple[ast.Node, ast.Node]] = []
        while self.accept_kw("WHEN"):
            cond = self.parse_expr()
            self.expect_kw("THEN")
            whens.append((cond, self.parse_expr()))
        if not whens:
            raise self.error("CASE needs at least one WHEN")
        default = self.parse_expr() if self.accept_kw("ELSE") else None
        self.expect_kw("END")
        return ast.Case(start.pos, subject, tuple(whens), default)

    def parse_object(self) -> ast.Node:
        start = self.expect_op("{")
        items: list[tuple[str, ast.Node]] = []
        if not self.is_op("}"):
            while True:
                t = self.tok
                if t.kind not in (Kind.STRING, Kind.IDENT):
                    raise self.error("expected a key in the object literal")
                self.advance()
                self.expect_op(":")
                items.append((t.text, self.parse_expr()))
                if not self.accept_op(","):
                    break
        self.expect_op("}")
        return ast.ObjectLiteral(start.pos, tuple(items))

    def parse_array(self) -> ast.Node:
        start = self.expect_op("[")
        items: list[ast.Node] = []
        if not self.is_op("]"):
            while True:
                items.append(self.parse_expr())
                if not self.accept_op(","):
                    break
        self.expect_op("]")
        return ast.ArrayLiteral(start.pos, tuple(items))


def parse(sql: str) -> ast.Select:
    try:
        return Parser(sql).parse_statement()
    except RecursionError:
        raise RuleSyntaxError("statement nested too deeply", sql, 1, 1) from None


def position(sql: str, pos: int) -> tuple[int, int]:
    """1-based (line, column) of offset ``pos``."""
    line = sql.count("\n", 0, pos) + 1
    column = pos - (sql.rfind("\n", 0, pos) + 1) + 1
    return line, column
