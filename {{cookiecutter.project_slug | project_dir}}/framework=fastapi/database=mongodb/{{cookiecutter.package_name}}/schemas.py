from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

# documents.py gives MongoDB's validator the same limits.
NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)


class ItemRead(BaseModel):
    # The document's ObjectId, as its 24 hexadecimal digits.
    id: str
    name: str
    description: str | None
    created_at: datetime


class ItemPage(BaseModel):
    items: list[ItemRead]
    total: int
    limit: int
    offset: int
