#!/usr/bin/env python3
"""The SALE density that tests/gpu/flash_prefill_test.cc's inputs should give, in float64 numpy.

Same distribution as the test's SetUp (not the same random numbers: numpy's generator, not
std::mt19937): logits without quantization, the mandatory sink + local window, a block kept when
some row's probability against the mandatory log-sum-exp exceeds tau = 0.008. Prints ~0.63, so the
test's `density < 0.9` has room; run with any python that has numpy (.venv-ref/bin/python).
"""
import numpy as np
rng=np.random.default_rng(7)
N,H,G,D=700,8,2,128
q=rng.uniform(-1,1,(N,H,D)).astype(np.float32)*1.0
k=rng.uniform(-1,1,(N,G,D)).astype(np.float32)
q[:,:,0]+=6; k[:32,:,0]+=10
heavy=np.arange(N)%150==75
q[:,:,1]+=3; k[heavy,:,1]+=20
sc=1/np.sqrt(D)
kept=0;causal=0
for h in range(H):
  g=h//(H//G)
  L=(q[:,h,:]@k[:,g,:].T)*sc
  L=np.where(np.tril(np.ones((N,N)))>0,L,-np.inf)
  for qb in range((N+63)//64):
    r0,r1=qb*64,min(N,qb*64+64)
    last=(r1-1)//32
    for kb in range(last+1):
      causal+=1
      mand = kb*32<32 or kb>= max(0,(qb*64-128))//32
      if mand: kept+=1; continue
    # lse over mandatory
    m=np.zeros((r1-r0,N),bool)
    for kb in range(last+1):
      if kb*32<32 or kb>=max(0,(qb*64-128))//32: m[:,kb*32:kb*32+32]=True
    Lm=np.where(m,L[r0:r1],-np.inf)
    lse=np.log(np.exp(Lm-Lm.max(1,keepdims=True)).sum(1))+Lm.max(1)
    for kb in range(last+1):
      if kb*32<32 or kb>=max(0,(qb*64-128))//32: continue
      p=np.exp(L[r0:r1,kb*32:kb*32+32]-lse[:,None])
      if (p>0.008).any(): kept+=1
print("density",kept/causal)
