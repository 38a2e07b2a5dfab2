from da_bench.methods.adda import ADDA
from da_bench.methods.base import DAMethod
from da_bench.methods.dann import DANN
from da_bench.methods.source_only import SourceOnly
from da_bench.methods.target_only import TargetOnly

__all__ = ["DAMethod", "SourceOnly", "TargetOnly", "DANN", "ADDA"]
from da_bench.methods.coral import DeepCORAL
from da_bench.methods.dan import DAN
from da_bench.methods.ddc import DDC

__all__ += ["DDC", "DAN", "DeepCORAL"]
from da_bench.methods.daan import DAAN
from da_bench.methods.dsn import DSN
from da_bench.methods.wdgrl import WDGRL

__all__ += ["WDGRL", "DSN", "DAAN"]
from da_bench.methods.clan import CLAN
from da_bench.methods.seg_adv import SegAdversarial
from da_bench.methods.seg_source_only import SegSourceOnly, SegTargetOnly

__all__ += ["SegSourceOnly", "SegTargetOnly", "SegAdversarial", "CLAN"]
