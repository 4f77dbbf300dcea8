from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
{%- if cookiecutter.database == "mongodb" %}

# documents.py gives MongoDB's validator the same limits.
NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
{%- endif %}

# No NUL characters: databases and C libraries take one for the end of the text.
NO_NUL = r"^[^\x00]*$"


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
{% if cookiecutter.database == "mongodb" %}
    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NO_NUL)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH, pattern=NO_NUL)
{%- else %}
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    description: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)
{%- endif %}


class ItemRead(BaseModel):
{%- if cookiecutter.database == "mongodb" %}
    # The document's ObjectId, as its 24 hexadecimal digits.
    id: str
{%- else %}
    model_config = ConfigDict(from_attributes=True)

    id: int
{%- endif %}
    name: str
    description: str | None
    created_at: datetime


class ItemPage(BaseModel):
    items: list[ItemRead]
    total: int
    limit: int
    offset: int


class Error(BaseModel):
    """The body of every error answer but FastAPI's 422, whose `detail` lists the invalid fields."""

    detail: str
