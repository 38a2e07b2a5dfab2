from da_bench.data.files import DataCorruptError, DataError, DataMissingError
from da_bench.data.pair import Domain, DomainPair

__all__ = ["Domain", "DomainPair", "DataError", "DataMissingError", "DataCorruptError"]
